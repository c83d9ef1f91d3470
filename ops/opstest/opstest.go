// Package opstest reads a process's metrics the way Prometheus does: a GET
// of its /metrics, parsed from the text format. Tests read what a scrape
// would, not the registry the code wrote to.
package opstest

import (
	"encoding/json"
	"maps"
	"net/http"
	"slices"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Metrics is one scrape: the metric families by name.
type Metrics map[string]*dto.MetricFamily

// Scrape GETs url (a /metrics) and parses the answer.
func Scrape(t testing.TB, url string) Metrics {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("opstest: scrape %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("opstest: scrape %s: status %d", url, resp.StatusCode)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("opstest: scrape %s: %v", url, err)
	}
	return families
}

// Names are the metric families' names, sorted.
func (m Metrics) Names() []string { return slices.Sorted(maps.Keys(m)) }

// Value is the value of the series of name whose labels include labels
// (name, value pairs): a counter's or gauge's value, a histogram's count.
// ok is false when there is no such series.
func (m Metrics) Value(name string, labels ...string) (v float64, ok bool) {
	f := m[name]
	if f == nil {
		return 0, false
	}
	for _, s := range f.GetMetric() {
		if !hasLabels(s, labels) {
			continue
		}
		switch {
		case s.Counter != nil:
			return s.Counter.GetValue(), true
		case s.Gauge != nil:
			return s.Gauge.GetValue(), true
		case s.Histogram != nil:
			return float64(s.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

func hasLabels(s *dto.Metric, labels []string) bool {
	have := map[string]string{}
	for _, l := range s.GetLabel() {
		have[l.GetName()] = l.GetValue()
	}
	for i := 0; i+1 < len(labels); i += 2 {
		if v, ok := have[labels[i]]; !ok || v != labels[i+1] {
			return false
		}
	}
	return true
}

// Readiness is an answer of /readyz.
type Readiness struct {
	Code   int               // the HTTP status
	Status string            `json:"status"`
	Checks map[string]string `json:"checks"`
}

// Readyz GETs url's /readyz.
func Readyz(t testing.TB, url string) Readiness {
	t.Helper()
	resp, err := http.Get(url + "/readyz")
	if err != nil {
		t.Fatalf("opstest: %v", err)
	}
	defer resp.Body.Close()
	r := Readiness{Code: resp.StatusCode}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatalf("opstest: %s/readyz: %v", url, err)
	}
	return r
}
