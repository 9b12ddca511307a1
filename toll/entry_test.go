package toll

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/digitoll/digitoll-worker/contract"
	"github.com/digitoll/digitoll-worker/failure"
	"github.com/digitoll/digitoll-worker/internal/buftest"
)

func TestPresent(t *testing.T) {
	const mrn = "25NO4TU2HUD59UCBT8"
	p := Presentation{RequestID: "9f1c7c1e-5d0b-4a55-9a55-0d6f0a0b8f2e", CustomsOfficeOfPresentation: "NO351001", MRN: mrn}
	tests := []struct {
		name  string
		reply reply
		check func(t *testing.T, err error)
	}{
		{"200 with an empty body", reply{status: 200}, noError},
		{"204", reply{status: 204}, noError},
		{"200 with a body", reply{status: 200, body: `{"status":"PRESENTED"}`}, noError},
		{"400 requestId already used", reply{status: 400, body: `{"validationErrors":[{"field":"requestId","error":"requestId already used"}]}`},
			func(t *testing.T, err error) {
				var rej *RejectedError
				if !errors.As(err, &rej) || !errors.Is(err, ErrRequestIDUsed) {
					t.Fatalf("err = %v, want a *RejectedError matching ErrRequestIDUsed", err)
				}
				if len(rej.Errors) != 1 || rej.Errors[0] != (contract.FieldError{Path: "requestId", Message: "requestId already used"}) {
					t.Errorf("errors %+v", rej.Errors)
				}
			}},
		{"400 with another error", reply{status: 400, body: `{"validationErrors":[{"field":"mrn","error":"MRN 25NO4TU2HUD59UCBT8 is not a known declaration"}]}`},
			func(t *testing.T, err error) {
				var rej *RejectedError
				if !errors.As(err, &rej) || errors.Is(err, ErrRequestIDUsed) || rej.Errors[0].Path != "mrn" {
					t.Errorf("err = %v, want a *RejectedError about the mrn, not ErrRequestIDUsed", err)
				}
			}},
		{"400 with reuse among other errors", reply{status: 400, body: `{"validationErrors":[{"field":"mrn","error":"unknown"},{"field":"requestId","error":"RequestId ALREADY USED"}]}`},
			func(t *testing.T, err error) {
				if !errors.Is(err, ErrRequestIDUsed) {
					t.Errorf("err = %v, want ErrRequestIDUsed", err)
				}
			}},
		{"503 is transient", reply{status: 503}, func(t *testing.T, err error) {
			var he *HTTPError
			if !errors.As(err, &he) || failure.Classify(err) != failure.Transient {
				t.Errorf("err = %v, want a transient *HTTPError", err)
			}
		}},
		{"403 is configuration", reply{status: 403}, func(t *testing.T, err error) {
			if failure.Classify(err) != failure.Config {
				t.Errorf("err = %v, want config", err)
			}
		}},
		{"409 is permanent", reply{status: 409}, func(t *testing.T, err error) {
			if failure.Classify(err) != failure.Permanent || errors.Is(err, ErrRequestIDUsed) {
				t.Errorf("err = %v, want permanent", err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake, srv := newFakeToll(t, tt.reply)
			tokens := &fakeTokens{}
			c := newClient(srv, tokens, &buftest.Buffer{})
			tt.check(t, c.Present(t.Context(), p))

			got := fake.seen()
			if len(got) != 1 || got[0].Method != "POST" || got[0].Path != "/api/movement/presentation/v1/entry-summary-declaration" ||
				got[0].ContentType != "application/json" || got[0].Auth != "Bearer secret-token-1" {
				t.Fatalf("requests %+v, want one POST of the presentation with the token", got)
			}
			var body map[string]string
			if err := json.Unmarshal(got[0].Body, &body); err != nil || len(body) != 3 ||
				body["requestId"] != p.RequestID || body["customsOfficeOfPresentation"] != "NO351001" || body["mrn"] != mrn {
				t.Errorf("body %s, want exactly requestId, customsOfficeOfPresentation and mrn", got[0].Body)
			}
			if len(tokens.scopes) != 1 || tokens.scopes[0] != "toll:movement/entry" {
				t.Errorf("token scopes %q, want toll:movement/entry", tokens.scopes)
			}
		})
	}

	t.Run("foreign business", func(t *testing.T) {
		_, srv := newFakeToll(t, reply{status: 200})
		tokens := &fakeTokens{}
		c := newClient(srv, tokens, &buftest.Buffer{})
		c.Foreign = true
		if err := c.Present(t.Context(), p); err != nil {
			t.Fatal(err)
		}
		if len(tokens.scopes) != 1 || tokens.scopes[0] != "toll:eu/movement/entry" {
			t.Errorf("token scopes %q, want toll:eu/movement/entry", tokens.scopes)
		}
	})
	t.Run("incomplete presentation is not sent", func(t *testing.T) {
		fake, srv := newFakeToll(t, reply{status: 200})
		c := newClient(srv, &fakeTokens{}, &buftest.Buffer{})
		for _, bad := range []Presentation{{CustomsOfficeOfPresentation: "NO351001", MRN: mrn}, {RequestID: p.RequestID, MRN: mrn}, {RequestID: p.RequestID, CustomsOfficeOfPresentation: "NO351001"}} {
			if err := c.Present(t.Context(), bad); failure.Classify(err) != failure.Permanent {
				t.Errorf("%+v: err = %v, want permanent", bad, err)
			}
		}
		if n := len(fake.seen()); n != 0 {
			t.Errorf("%d requests sent", n)
		}
	})
}

func noError(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Errorf("err = %v, want nil", err)
	}
}

func TestRequestIDUsed(t *testing.T) {
	tests := []struct {
		fe   contract.FieldError
		want bool
	}{
		{contract.FieldError{Path: "requestId", Message: "requestId already used"}, true},
		{contract.FieldError{Path: "requestID", Message: "Already used"}, true},
		{contract.FieldError{Path: "presentation.requestId", Message: "is already in use"}, true},
		{contract.FieldError{Message: "RequestId 9f1c7c1e is already used"}, true},
		{contract.FieldError{Path: "requestId", Message: "must be a UUID"}, false},
		{contract.FieldError{Path: "mrn", Message: "already used"}, false},
		{contract.FieldError{Path: "consignmentHouseLevel.transportDocumentHouseLevel.documentNumber", Message: "Transport document number HWB-1 is already in use"}, false},
	}
	for _, tt := range tests {
		if got := RequestIDUsed(tt.fe); got != tt.want {
			t.Errorf("RequestIDUsed(%+v) = %v, want %v", tt.fe, got, tt.want)
		}
	}
	if errors.Is(&RejectedError{Status: 400}, ErrRequestIDUsed) {
		t.Error("a rejection without errors matches ErrRequestIDUsed")
	}
	if errors.Is(&RejectedError{Status: 400, Errors: []contract.FieldError{{Path: "requestId", Message: "already used"}}}, ErrNotFound) {
		t.Error("a rejection matches an unrelated sentinel")
	}
}
