package dashboard

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"
)

// apiResponse is the envelope of every answer of Prometheus's HTTP API.
type apiResponse struct {
	Status    string          `json:"status"`
	ErrorType string          `json:"errorType"`
	Error     string          `json:"error"`
	Data      json.RawMessage `json:"data"`
}

func decode(body []byte) (json.RawMessage, error) {
	var r apiResponse
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("not an answer of Prometheus's API: %w", err)
	}
	if r.Status != "success" {
		if r.Error == "" {
			r.Error = "status " + strconv.Quote(r.Status)
		}
		return nil, fmt.Errorf("%s: %s", r.ErrorType, r.Error)
	}
	return r.Data, nil
}

// Series counts the series with a value in body, an answer of /api/v1/query: the series
// whose value is a number (NaN is none: a quantile of no requests, a ratio of nothing), or
// whose samples include a number for a range vector. An error answer is an error.
func Series(body []byte) (int, error) {
	data, err := decode(body)
	if err != nil {
		return 0, err
	}
	var result struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	}
	if err := json.Unmarshal(data, &result); err != nil {
		return 0, fmt.Errorf("query result: %w", err)
	}
	switch result.ResultType {
	case "vector":
		var vector []struct {
			Value [2]any `json:"value"`
		}
		if err := json.Unmarshal(result.Result, &vector); err != nil {
			return 0, fmt.Errorf("query result: %w", err)
		}
		n := 0
		for _, s := range vector {
			if isNumber(s.Value[1]) {
				n++
			}
		}
		return n, nil
	case "matrix":
		var matrix []struct {
			Values [][2]any `json:"values"`
		}
		if err := json.Unmarshal(result.Result, &matrix); err != nil {
			return 0, fmt.Errorf("query result: %w", err)
		}
		n := 0
		for _, s := range matrix {
			for _, v := range s.Values {
				if isNumber(v[1]) {
					n++
					break
				}
			}
		}
		return n, nil
	case "scalar":
		var scalar [2]any
		if err := json.Unmarshal(result.Result, &scalar); err != nil {
			return 0, fmt.Errorf("query result: %w", err)
		}
		if isNumber(scalar[1]) {
			return 1, nil
		}
		return 0, nil
	}
	return 0, fmt.Errorf("query result of type %q, want a vector, a matrix or a scalar", result.ResultType)
}

// isNumber reports whether v, a sample's value as the API writes it (a string), is a number
// other than NaN.
func isNumber(v any) bool {
	s, ok := v.(string)
	if !ok {
		return false
	}
	f, err := strconv.ParseFloat(s, 64)
	return err == nil && !math.IsNaN(f)
}

// OldestScrape returns the time of the least recent last scrape among the active targets in
// body, an answer of /api/v1/targets; a target never scraped yet counts as the zero time.
// No targets at all is an error: there would be nothing to show.
func OldestScrape(body []byte) (time.Time, error) {
	data, err := decode(body)
	if err != nil {
		return time.Time{}, err
	}
	var targets struct {
		Active []struct {
			ScrapePool string    `json:"scrapePool"`
			LastScrape time.Time `json:"lastScrape"`
		} `json:"activeTargets"`
	}
	if err := json.Unmarshal(data, &targets); err != nil {
		return time.Time{}, fmt.Errorf("targets: %w", err)
	}
	if len(targets.Active) == 0 {
		return time.Time{}, errors.New("Prometheus has no active targets")
	}
	oldest := targets.Active[0].LastScrape
	for _, t := range targets.Active[1:] {
		if t.LastScrape.Before(oldest) {
			oldest = t.LastScrape
		}
	}
	return oldest, nil
}

// OldestEvaluation returns the time of the least recent evaluation among the rule groups in
// body, an answer of /api/v1/rules; a group never evaluated yet counts as the zero time. No
// rule groups is the current time: there is nothing to wait for.
func OldestEvaluation(body []byte, now time.Time) (time.Time, error) {
	data, err := decode(body)
	if err != nil {
		return time.Time{}, err
	}
	var rules struct {
		Groups []struct {
			Name           string    `json:"name"`
			LastEvaluation time.Time `json:"lastEvaluation"`
		} `json:"groups"`
	}
	if err := json.Unmarshal(data, &rules); err != nil {
		return time.Time{}, fmt.Errorf("rules: %w", err)
	}
	oldest := now
	for _, g := range rules.Groups {
		if g.LastEvaluation.Before(oldest) {
			oldest = g.LastEvaluation
		}
	}
	return oldest, nil
}

// DownTargets names the active targets in body, an answer of /api/v1/targets, whose last
// scrape failed or that were never scraped ("job instance: health, the error"), sorted.
func DownTargets(body []byte) ([]string, error) {
	data, err := decode(body)
	if err != nil {
		return nil, err
	}
	var targets struct {
		Active []struct {
			ScrapePool string            `json:"scrapePool"`
			Labels     map[string]string `json:"labels"`
			Health     string            `json:"health"`
			LastError  string            `json:"lastError"`
		} `json:"activeTargets"`
	}
	if err := json.Unmarshal(data, &targets); err != nil {
		return nil, fmt.Errorf("targets: %w", err)
	}
	var down []string
	for _, t := range targets.Active {
		if t.Health == "up" {
			continue
		}
		d := fmt.Sprintf("%s %s: %s", t.ScrapePool, t.Labels["instance"], t.Health)
		if t.LastError != "" {
			d += ", " + t.LastError
		}
		down = append(down, d)
	}
	slices.Sort(down)
	return down, nil
}
