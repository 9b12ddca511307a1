// Package samples holds example submissions: the demo publishes them, the
// tests and benchmarks build on them, and people read them to learn the
// message format. They are ordinary files under samples/ and can be
// published with `digitoll publish samples/road`.
package samples

import (
	"embed"
	"io/fs"
	"path"
	"sort"

	"github.com/digitoll/digitoll-worker/contract"
)

// One folder per kind: a new kind's folder is embedded with no change here.
//
//go:embed */*.json
var files embed.FS

// Sample is one example submission.
type Sample struct {
	Kind contract.Kind
	Name string
	Body []byte
}

// Load returns the samples of kind in file-name order, which is the order
// they are meant to be published in.
func Load(kind contract.Kind) ([]Sample, error) {
	names, err := fs.Glob(files, string(kind)+"/*.json")
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	out := make([]Sample, 0, len(names))
	for _, n := range names {
		b, err := files.ReadFile(n)
		if err != nil {
			return nil, err
		}
		out = append(out, Sample{Kind: kind, Name: path.Base(n), Body: b})
	}
	return out, nil
}
