package worker

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"testing"

	"github.com/digitoll/digitoll-worker/contract"
	"github.com/digitoll/digitoll-worker/samples"
)

// The digest is recorded and compared across versions: it must stay the
// SHA-256 of what json.Compact makes of the body, however it is computed.
func TestSubmissionDigestIsThatOfTheCompactedBody(t *testing.T) {
	t.Parallel()
	bodies := []string{
		`{"id":"a"}`,
		" {\t\"id\" :\r\n \"a b\" , \"n\" : [ 1 , 2 ] }\n",
		`{"id":"a","note":"a \"quoted\" word, a \\ and a \\\" then  spaces"}`,
		`{"id":"a","s":"\\","t":" x "}`,
		`{"id":"a","u":"\u00e6\u2028 ø ","e":[],"o":{}}`,
	}
	for _, kind := range contract.Kinds() {
		all, err := samples.Load(kind)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range all {
			bodies = append(bodies, string(s.Body))
		}
	}
	for _, body := range bodies {
		var buf bytes.Buffer
		if err := json.Compact(&buf, []byte(body)); err != nil {
			t.Fatalf("test body does not compact: %v\n%s", err, body)
		}
		sum := sha256.Sum256(buf.Bytes())
		if got, want := submissionDigest([]byte(body)), hex.EncodeToString(sum[:]); got != want {
			t.Errorf("digest %s, want %s of the compacted body of\n%s", got, want, body)
		}
	}
	if got := submissionDigest([]byte(`{"id":"a`)); got != "" {
		t.Errorf("a body ending inside a string has digest %s, want none", got)
	}
}
