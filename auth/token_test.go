package auth_test

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/digitoll/digitoll-worker/auth"
)

// A Token printed or logged by accident never shows its access token.
func TestTokenRedacted(t *testing.T) {
	const secret = "eyJsecret-access-token-value"
	tok := auth.Token{AccessToken: secret, TokenType: "Bearer", Expiry: time.Unix(1_736_928_000, 0), Scope: "toll:movement/air"}
	var text, js strings.Builder
	slog.New(slog.NewTextHandler(&text, nil)).Info("got", "token", tok)
	slog.New(slog.NewJSONHandler(&js, nil)).Info("got", "token", tok)
	holder := struct{ Token auth.Token }{tok}

	outputs := map[string]string{
		"%v": fmt.Sprintf("%v", tok), "%+v": fmt.Sprintf("%+v", tok), "%#v": fmt.Sprintf("%#v", tok),
		//lint:ignore S1025 each formatting verb is what is under test
		"%s": fmt.Sprintf("%s", tok), "nested %+v": fmt.Sprintf("%+v", holder), "pointer": fmt.Sprintf("%v", &tok),
		"slog text": text.String(), "slog json": js.String(),
	}
	for how, out := range outputs {
		if strings.Contains(out, "secret-access") {
			t.Errorf("%s leaks the access token: %s", how, out)
		}
		if !strings.Contains(out, "redacted") || !strings.Contains(out, "toll:movement/air") {
			t.Errorf("%s = %s, want the scope and a redaction marker", how, out)
		}
	}
}
