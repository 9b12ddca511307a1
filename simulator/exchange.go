package simulator

import (
	"net/http"
	"slices"
	"strings"
	"time"
)

// The exchange's parameter values: Toll's short forms, not RFC 8693 URNs.
const (
	exchangeGrantType = "token-exchange"
	exchangeTokenType = "access_token"
)

// tollToken is the exchange's success answer.
type tollToken struct {
	IssuedTokenType string `json:"issued_token_type"`
	AccessToken     string `json:"access_token"`
	TokenType       string `json:"token_type"`
	ExpiresIn       int64  `json:"expires_in"`
}

// serveTokenExchange trades a Maskinporten token for a Toll token with the
// same client and scopes.
func (s *Server) serveTokenExchange(w http.ResponseWriter, r *http.Request) {
	if s.currentFaults().ExchangeDown {
		serverError("simulated token exchange outage").write(w)
		return
	}
	tok, oerr := s.exchange(w, r)
	if oerr != nil {
		setRequestNote(r, oerr.Error())
		oerr.write(w)
		return
	}
	writeJSON(w, http.StatusOK, tok)
}

func (s *Server) exchange(w http.ResponseWriter, r *http.Request) (tollToken, *oauthError) {
	form, oerr := readForm(w, r)
	if oerr != nil {
		return tollToken{}, oerr
	}
	for k := range form {
		switch k {
		case "grant_type", "subject_token_type", "subject_token":
		default:
			return tollToken{}, invalidRequest("Unexpected parameter " + k + ".")
		}
	}
	if form.Get("grant_type") != exchangeGrantType {
		return tollToken{}, &oauthError{status: http.StatusBadRequest, Code: "unsupported_grant_type", Description: "grant_type must be " + exchangeGrantType + "."}
	}
	if form.Get("subject_token_type") != exchangeTokenType {
		return tollToken{}, invalidRequest("subject_token_type must be " + exchangeTokenType + ".")
	}
	subject := form.Get("subject_token")
	if subject == "" {
		return tollToken{}, invalidRequest("Missing subject_token.")
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	s.st.prune(now)
	mp, ok := s.st.mpTokens[subject]
	if !ok || !now.Before(mp.expires) {
		return tollToken{}, &oauthError{status: http.StatusUnauthorized, Code: "invalid_token", Description: "The subject_token is not a valid Maskinporten access token, or it has expired."}
	}
	setRequestClient(r, mp.clientID)
	tok := newOpaqueToken()
	s.st.tollTokens[tok] = issuedToken{clientID: mp.clientID, scopes: mp.scopes, expires: now.Add(s.tollLifetime)}
	s.st.issuedTokens = remember(s.st.issuedTokens, tok)
	for _, sc := range mp.scopes {
		s.st.exchanges[scopeKey{mp.clientID, sc}]++
	}
	return tollToken{
		IssuedTokenType: exchangeTokenType,
		AccessToken:     tok,
		TokenType:       "Bearer",
		ExpiresIn:       int64(s.tollLifetime / time.Second),
	}, nil
}

// caller is the integration a Toll API call was made for.
type caller struct {
	clientID string
}

// tollHandler is a Toll API endpoint behind fault injection and bearer
// authentication.
type tollHandler func(w http.ResponseWriter, r *http.Request, c caller)

// tollAPI guards h: injected faults come first (a gateway in front of
// the API), then the bearer token must be a live Toll token with one of
// scopes. An authorized write may then lose its answer (see Faults).
func (s *Server) tollAPI(scopes []string, h tollHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !s.injectFaults(w, r) {
			return
		}
		c, status, msg := s.authorize(r, scopes)
		if status != 0 {
			setRequestNote(r, msg)
			code := "invalid_token"
			if status == http.StatusForbidden {
				code = "insufficient_scope"
			}
			w.Header().Set("WWW-Authenticate", `Bearer error="`+code+`"`)
			writeProblem(w, status, msg)
			return
		}
		setRequestClient(r, c.clientID)
		if s.answerLost(r) {
			serveWithoutAnswer(w, r, func(w http.ResponseWriter) { h(w, r, c) })
			return
		}
		if d := s.answerDelay(r); d > 0 {
			serveDelayed(w, r, d, func(w http.ResponseWriter) { h(w, r, c) })
			return
		}
		h(w, r, c)
	}
}

// authorize checks the bearer token. A non-zero status (401 or 403) with
// a message means refused.
func (s *Server) authorize(r *http.Request, scopes []string) (caller, int, string) {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return caller{}, http.StatusUnauthorized, "missing bearer token"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.st.tollTokens[tok]
	switch {
	case !ok:
		return caller{}, http.StatusUnauthorized, "unknown access token"
	case !s.now().Before(t.expires):
		return caller{}, http.StatusUnauthorized, "access token expired"
	}
	for _, sc := range t.scopes {
		if slices.Contains(scopes, sc) {
			return caller{clientID: t.clientID}, 0, ""
		}
	}
	return caller{}, http.StatusForbidden, "access token lacks scope " + scopes[0]
}
