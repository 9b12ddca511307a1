// Package promtest reads Prometheus metrics the way a Prometheus server
// does, for tests that check what the worker exposes: over HTTP in the
// text format, parsed into one value per series.
package promtest

import (
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Series maps each series, written as name{label="value",…} with labels
// sorted by name (just name when it has none), to its value. A histogram
// gives name_count and name_sum series, a summary the same.
type Series map[string]float64

// Scrape GETs url and parses the answer, failing the test on any error.
// It returns the text as served too, for tests that search it.
func Scrape(t testing.TB, url string) (Series, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape %s: HTTP %d\n%s", url, resp.StatusCode, body)
	}
	s, err := Parse(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("scrape %s: %v\n%s", url, err, body)
	}
	return s, string(body)
}

// Parse reads the Prometheus text format.
func Parse(r io.Reader) (Series, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(r)
	if err != nil {
		return nil, fmt.Errorf("promtest: %w", err)
	}
	out := Series{}
	for name, f := range families {
		for _, m := range f.GetMetric() {
			key := Key(name, pairs(m.GetLabel())...)
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				out[key] = m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				out[key] = m.GetGauge().GetValue()
			case dto.MetricType_UNTYPED:
				out[key] = m.GetUntyped().GetValue()
			case dto.MetricType_HISTOGRAM:
				out[Key(name+"_count", pairs(m.GetLabel())...)] = float64(m.GetHistogram().GetSampleCount())
				out[Key(name+"_sum", pairs(m.GetLabel())...)] = m.GetHistogram().GetSampleSum()
			case dto.MetricType_SUMMARY:
				out[Key(name+"_count", pairs(m.GetLabel())...)] = float64(m.GetSummary().GetSampleCount())
				out[Key(name+"_sum", pairs(m.GetLabel())...)] = m.GetSummary().GetSampleSum()
			}
		}
	}
	return out, nil
}

func pairs(labels []*dto.LabelPair) []string {
	out := make([]string, 0, 2*len(labels))
	for _, l := range labels {
		out = append(out, l.GetName(), l.GetValue())
	}
	return out
}

// Key writes a series name: name and label name/value pairs in any order.
func Key(name string, labelPairs ...string) string {
	if len(labelPairs) == 0 {
		return name
	}
	type pair struct{ k, v string }
	ps := make([]pair, 0, len(labelPairs)/2)
	for i := 0; i+1 < len(labelPairs); i += 2 {
		ps = append(ps, pair{labelPairs[i], labelPairs[i+1]})
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i].k < ps[j].k })
	parts := make([]string, len(ps))
	for i, p := range ps {
		parts[i] = fmt.Sprintf("%s=%q", p.k, p.v)
	}
	return name + "{" + strings.Join(parts, ",") + "}"
}

// Sum adds the values of every series of name whose labels include the
// given name/value pairs.
func (s Series) Sum(name string, labelPairs ...string) float64 {
	total := 0.0
	for key, v := range s {
		if key != name && !strings.HasPrefix(key, name+"{") {
			continue
		}
		match := true
		for i := 0; i+1 < len(labelPairs); i += 2 {
			l := fmt.Sprintf("%s=%q", labelPairs[i], labelPairs[i+1])
			if !strings.Contains(key, "{"+l) && !strings.Contains(key, ","+l) {
				match = false
				break
			}
		}
		if match {
			total += v
		}
	}
	return total
}
