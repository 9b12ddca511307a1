package simulator_test

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/digitoll/digitoll-worker/simulator"
)

const (
	scopeRoad   = "toll:movement/road/v2"
	scopeRoadEU = "toll:eu/movement/road/v2"
	scopeAir    = "toll:movement/air"

	clientKid = "client-kid" // kid mode, road
	kidKid    = "kid-1"
	clientX5c = "client-x5c" // x5c mode, road and air
	clientEU  = "client-eu"  // kid mode, foreign business road scope
	kidEU     = "kid-eu"
)

// testKeys are made once: RSA key generation is the slow part of these tests.
type testKeys struct {
	kid, x5c, other      *rsa.PrivateKey
	x5cCert, otherCert   *x509.Certificate
	expiredCertForX5cKey *x509.Certificate
}

var keys = sync.OnceValue(func() testKeys {
	gen := func() *rsa.PrivateKey {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		return k
	}
	k := testKeys{kid: gen(), x5c: gen(), other: gen()}
	now := time.Now()
	k.x5cCert = selfSigned(k.x5c, now.Add(-time.Hour), now.Add(time.Hour))
	k.otherCert = selfSigned(k.other, now.Add(-time.Hour), now.Add(time.Hour))
	k.expiredCertForX5cKey = selfSigned(k.x5c, now.Add(-2*time.Hour), now.Add(-time.Hour))
	return k
})

func selfSigned(key *rsa.PrivateKey, from, to time.Time) *x509.Certificate {
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		panic(err)
	}
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: "test"}, NotBefore: from, NotAfter: to}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		panic(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		panic(err)
	}
	return cert
}

// clock is a settable clock for Config.Now.
type clock struct {
	mu     sync.Mutex
	offset time.Duration
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset += d
}

func testClients() []simulator.Client {
	k := keys()
	return []simulator.Client{
		{ID: clientKid, KeyID: kidKid, PublicKey: &k.kid.PublicKey, Scopes: []string{scopeRoad}},
		{ID: clientX5c, Certificate: k.x5cCert, Scopes: []string{scopeRoad, scopeAir}},
		{ID: clientEU, KeyID: kidEU, PublicKey: &k.kid.PublicKey, Scopes: []string{scopeRoadEU}},
	}
}

// start runs a simulator with the test clients, closed at cleanup.
func start(t *testing.T, cfg simulator.Config) *simulator.Server {
	t.Helper()
	if cfg.Clients == nil {
		cfg.Clients = testClients()
	}
	srv, err := simulator.Start(cfg, "127.0.0.1:0")
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return srv
}

// claims are a valid grant's claims at now.
func claims(srv *simulator.Server, clientID, scope string, now time.Time) jwt.MapClaims {
	return jwt.MapClaims{
		"aud":   srv.Issuer(),
		"iss":   clientID,
		"scope": scope,
		"iat":   now.Unix(),
		"exp":   now.Add(120 * time.Second).Unix(),
		"jti":   uuid.NewString(),
	}
}

// sign makes a grant; header entries set to nil are removed.
func sign(t *testing.T, method jwt.SigningMethod, key any, header map[string]any, c jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, c)
	for k, v := range header {
		if v == nil {
			delete(tok.Header, k)
			continue
		}
		tok.Header[k] = v
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	return s
}

func x5c(certs ...*x509.Certificate) []string {
	out := make([]string, len(certs))
	for i, c := range certs {
		out[i] = base64.StdEncoding.EncodeToString(c.Raw)
	}
	return out
}

// kidGrant is a valid kid-mode grant of clientKid.
func kidGrant(t *testing.T, srv *simulator.Server, scope string) string {
	return sign(t, jwt.SigningMethodRS256, keys().kid, map[string]any{"kid": kidKid}, claims(srv, clientKid, scope, time.Now()))
}

type answer struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func (a answer) str(key string) string {
	s, _ := a.body[key].(string)
	return s
}

func do(t *testing.T, req *http.Request) answer {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	a := answer{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	// Not every answer is a JSON object; those leave body nil.
	_ = json.Unmarshal(raw, &a.body)
	return a
}

func postForm(t *testing.T, u string, form url.Values) answer {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return do(t, req)
}

func grantForm(assertion string) url.Values {
	return url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:jwt-bearer"}, "assertion": {assertion}}
}

func exchangeForm(subject string) url.Values {
	return url.Values{"grant_type": {"token-exchange"}, "subject_token_type": {"access_token"}, "subject_token": {subject}}
}

// maskinportenToken gets an access token for a grant, failing the test
// if refused.
func maskinportenToken(t *testing.T, srv *simulator.Server, assertion string) string {
	t.Helper()
	a := postForm(t, srv.TokenURL(), grantForm(assertion))
	if a.status != http.StatusOK || a.str("access_token") == "" {
		t.Fatalf("token: %d %s", a.status, a.raw)
	}
	return a.str("access_token")
}

func exchange(t *testing.T, srv *simulator.Server, mpToken string) string {
	t.Helper()
	a := postForm(t, srv.TollBaseURL()+"/access/external/oauth/token", exchangeForm(mpToken))
	if a.status != http.StatusOK || a.str("access_token") == "" {
		t.Fatalf("exchange: %d %s", a.status, a.raw)
	}
	return a.str("access_token")
}

// roadToken is a Toll token of clientKid for road.
func roadToken(t *testing.T, srv *simulator.Server) string {
	t.Helper()
	return exchange(t, srv, maskinportenToken(t, srv, kidGrant(t, srv, scopeRoad)))
}

// x5cToken is a Toll token of clientX5c for scope.
func x5cToken(t *testing.T, srv *simulator.Server, scope string) string {
	t.Helper()
	g := sign(t, jwt.SigningMethodRS256, keys().x5c, map[string]any{"x5c": x5c(keys().x5cCert)}, claims(srv, clientX5c, scope, time.Now()))
	return exchange(t, srv, maskinportenToken(t, srv, g))
}

// call sends a Toll API request; body is JSON-encoded unless it is a
// string, which is sent as is.
func call(t *testing.T, method, u, token string, body any) answer {
	t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		r = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, u, r)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return do(t, req)
}

func road(srv *simulator.Server, rest string) string {
	return srv.TollBaseURL() + "/movement/road/v2/" + rest
}

func roadQuery(srv *simulator.Server, rest string) string {
	return srv.TollBaseURL() + "/movement/road/status/v2/" + rest
}

// submit sends a write and returns its requestId, failing unless 202.
func submit(t *testing.T, method, u, token string, body any) string {
	t.Helper()
	a := call(t, method, u, token, body)
	if a.status != http.StatusAccepted || a.str("requestId") == "" {
		t.Fatalf("%s %s: %d %s", method, u, a.status, a.raw)
	}
	return a.str("requestId")
}

// result polls a validation-status URL until it is no longer 404.
func result(t *testing.T, u, token string) answer {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for time.Now().Before(deadline) {
		a := call(t, http.MethodGet, u, token, nil)
		if a.status != http.StatusNotFound {
			return a
		}
		<-tick.C
	}
	t.Fatalf("no validation result at %s before the deadline", u)
	return answer{}
}

// roadResult submits a road write and waits for its validation result.
func roadResult(t *testing.T, srv *simulator.Server, method, lvl, mrn, token string, body any) answer {
	t.Helper()
	path := lvl
	if mrn != "" {
		path += "/" + mrn
	}
	id := submit(t, method, road(srv, path), token, body)
	return result(t, roadQuery(srv, lvl+"/validation-status/"+id), token)
}

// mustSucceed checks a SUCCESS result and returns its MRN.
func mustSucceed(t *testing.T, a answer) string {
	t.Helper()
	if a.status != http.StatusOK || a.str("status") != "SUCCESS" || !simulator.ValidMRN(a.str("mrn")) {
		t.Fatalf("want SUCCESS with MRN, got %d %s", a.status, a.raw)
	}
	return a.str("mrn")
}

// failureDescriptions checks a FAILURE result and returns its
// descriptions and paths.
func failureDescriptions(t *testing.T, a answer) (descs, paths []string) {
	t.Helper()
	if a.status != http.StatusAccepted || a.str("status") != "FAILURE" {
		t.Fatalf("want FAILURE with 202, got %d %s", a.status, a.raw)
	}
	list, _ := a.body["validationErrorList"].([]any)
	for _, e := range list {
		m, _ := e.(map[string]any)
		d, _ := m["description"].(string)
		p, _ := m["pointer"].(map[string]any)
		path, _ := p["messageElementPath"].(string)
		descs, paths = append(descs, d), append(paths, path)
	}
	if len(descs) == 0 {
		t.Fatalf("FAILURE without validationErrorList: %s", a.raw)
	}
	return descs, paths
}

func transportBody(id string, masters ...string) map[string]any {
	refs := []any{}
	for _, m := range masters {
		refs = append(refs, map[string]any{"transportDocumentMasterLevel": map[string]any{"documentNumber": m, "type": "N741"}})
	}
	return map[string]any{
		"documentIssueDate": "2025-01-15T08:00:00Z",
		"activeBorderTransportMeans": map[string]any{
			"identificationNumber": id, "typeOfIdentification": "30", "countryCode": "NO", "modeOfTransportCode": "3",
		},
		"carrier":                       map[string]any{"name": "Carrier AS", "identificationNumber": "999999999"},
		"customsOfficeOfFirstEntry":     map[string]any{"referenceNumber": "NO012345"},
		"estimatedDateAndTimeOfArrival": "2025-01-15T14:00:00Z",
		"consignmentMasterLevel":        refs,
	}
}

func masterBody(mawb string) map[string]any {
	return map[string]any{
		"documentIssueDate": "2025-01-15T08:02:00Z",
		"consignmentMasterLevel": map[string]any{
			"containerIndicator": 0, "grossMass": 1200,
			"carrier":                      map[string]any{"identificationNumber": "999999999"},
			"transportDocumentMasterLevel": map[string]any{"documentNumber": mawb, "type": "N741"},
		},
	}
}

func houseBody(hwb, mawb string) map[string]any {
	return map[string]any{
		"documentIssueDate": "2025-01-15T08:05:00Z",
		"consignmentHouseLevel": map[string]any{
			"containerIndicator": 0, "totalGrossMass": 120.5, "numberOfPackages": 3, "goodsDescription": "brake discs",
			"transportDocumentHouseLevel": map[string]any{"documentNumber": hwb, "type": "N750"},
			"consignmentMasterLevel": map[string]any{
				"carrierIdentificationNumber":  "999999999",
				"transportDocumentMasterLevel": map[string]any{"documentNumber": mawb, "type": "N741"},
			},
			"consignor": map[string]any{"name": "Sender AB", "typeOfPerson": 2, "address": map[string]any{"city": "Göteborg", "country": "SE"}},
			"consignee": map[string]any{"name": "Receiver AS", "identificationNumber": "888888888", "typeOfPerson": 2, "address": map[string]any{"city": "Oslo", "country": "NO"}},
		},
	}
}

// set changes the value at a dotted path of a body built above.
func set(body map[string]any, path string, v any) map[string]any {
	segs := strings.Split(path, ".")
	m := body
	for _, s := range segs[:len(segs)-1] {
		m = m[s].(map[string]any)
	}
	if v == nil {
		delete(m, segs[len(segs)-1])
	} else {
		m[segs[len(segs)-1]] = v
	}
	return body
}
