package contract

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// The fast path must decode exactly what json.Decoder with
// DisallowUnknownFields decodes, and leave everything else to it: for any
// body, decodeSubmission's submission or error is decodeStrict's.
func FuzzDecodeSubmission(f *testing.F) {
	seeds := []string{
		`{"id":"a","operation":"create","level":"transport","declaration":{"x":[1,{"y":"}"}]},"metadata":{"k":"v","k":"w"}}`,
		` { "id" : "a" , "operation" : "update" , "mrn" : "25NO4TU2HUD59UCBT8" , "declaration" : { } } `,
		`{"ID":"a","operation":"create"}`,
		`{"id":"a","id":"b"}`,
		`{"id":"a\"b","operation":"create"}`,
		`{"id":"a\u0062"}`,
		`{"id":"æøå","metadata":{"ø":"å"}}`,
		"{\"id\":\"a\xff\"}",
		`{"id":null,"declaration":null,"metadata":null}`,
		`{"id":5}`,
		`{"metadata":{"k":1}}`,
		`{"metadata":{}}`,
		`{"declaration":"text","after":"b"}`,
		`{"declaration":[1,2] ,"level":"pallet","operation":"upsert"}`,
		`{"presentation":{"customsOfficeOfPresentation":"NO1"},"operation":"present","mrn":"25NO4TU2HUD59UCBT8","id":"p"}`,
		`{"document":{"declarationId":"1","documentType":"faktura","filename":"a.pdf","content":"AA=="},"operation":"upload","id":"d"}`,
		`{"id":"a","mnr":"x"}`,
		`{"id":"a"} {}`,
		`{"id":"a"}` + "\n",
		`[]`, `hello`, ``, `{}`, `null`, `{"id":"a",}`,
	}
	for _, kind := range Kinds() {
		files, _ := filepath.Glob(filepath.Join("..", "samples", string(kind), "*.json"))
		for _, file := range files {
			body, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			seeds = append(seeds, string(body))
		}
	}
	if len(seeds) < 30 {
		f.Fatalf("only %d seeds: the samples were not found", len(seeds))
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		want, wantErr := decodeStrict(body)
		got, gotErr := decodeSubmission(body)
		if (gotErr == nil) != (wantErr == nil) || (gotErr != nil && gotErr.Error() != wantErr.Error()) {
			t.Fatalf("error %v, want %v\nbody %q", gotErr, wantErr, body)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("decoded %+v, want %+v\nbody %q", got, want, body)
		}
	})
}

// The submissions producers send take the fast path.
func TestDecodeCommonTakesTheSamples(t *testing.T) {
	for _, kind := range []Kind{KindRoad, KindAir} {
		files, _ := filepath.Glob(filepath.Join("..", "samples", string(kind), "*.json"))
		if len(files) == 0 {
			t.Fatalf("no %s samples", kind)
		}
		for _, file := range files {
			body, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := decodeCommon(body); !ok {
				t.Errorf("%s is left to the slow path", file)
			}
		}
	}
}
