package main

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/assistants-go/assistants/server"
)

// TestServeOpsFlags: --log-format picks the log handler, --rate-limit and
// --rate-burst reach the server's options (default: no limit), and bad
// values are usage errors.
func TestServeOpsFlags(t *testing.T) {
	for _, tc := range []struct {
		args      []string
		json      bool
		rate      float64
		burst     int
		usageErr  bool
		errSubstr string
	}{
		{args: nil},
		{args: []string{"--log-format", "json"}, json: true},
		{args: []string{"--log-format", "text"}},
		{args: []string{"--log-format", "yaml"}, usageErr: true, errSubstr: "--log-format"},
		{args: []string{"--rate-limit", "20", "--rate-burst", "40"}, rate: 20, burst: 40},
		{args: []string{"--rate-limit", "2.5"}, rate: 2.5},
		{args: []string{"--rate-limit", "-1"}, usageErr: true, errSubstr: "--rate-limit"},
		{args: []string{"--rate-limit", "NaN"}, usageErr: true, errSubstr: "--rate-limit"},
		{args: []string{"--rate-burst", "-3"}, usageErr: true, errSubstr: "--rate-burst"},
	} {
		_, opts, err := serveFlags(tc.args, io.Discard)
		if tc.usageErr {
			var ue *usageError
			require.ErrorAs(t, err, &ue, "%v", tc.args)
			assert.Contains(t, err.Error(), tc.errSubstr)
			continue
		}
		require.NoError(t, err, "%v", tc.args)
		var o server.Options
		for _, f := range opts {
			f(&o)
		}
		_, isJSON := o.Logger.Handler().(*slog.JSONHandler)
		assert.Equal(t, tc.json, isJSON, "%v", tc.args)
		assert.Equal(t, tc.rate, o.RateLimit, "%v", tc.args)
		assert.Equal(t, tc.burst, o.RateBurst, "%v", tc.args)
	}
}

// TestServeMetricsAddr: with --metrics-addr the metrics page is served on
// its own listener (and not on the API's), in the Prometheus text format,
// counting the API's requests; /healthz and /readyz answer on the API's
// listener without a key.
func TestServeMetricsAddr(t *testing.T) {
	t.Setenv("OPS_TEST_KEY", "sk-ops-test-key-42")
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- serve(ctx, []string{"--memory", "--addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0", "--step-delay", "0",
			"--log-level", "error", "--api-key-env", "OPS_TEST_KEY"}, pw)
		pw.Close()
	}()
	br := bufio.NewReader(pr)
	line, err := br.ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "data: in memory (lost when the process ends)\n", line)
	line, err = br.ReadString('\n')
	require.NoError(t, err)
	api := strings.TrimSuffix(strings.TrimSpace(strings.TrimPrefix(line, "listening on ")), "/v1")
	line, err = br.ReadString('\n')
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(line, "metrics on http://127.0.0.1:"), line)
	metricsURL := strings.TrimSpace(strings.TrimPrefix(line, "metrics on "))
	go io.Copy(io.Discard, br)

	get := func(url, key string) (int, string) {
		req, err := http.NewRequest("GET", url, nil)
		require.NoError(t, err)
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, string(b)
	}
	code, _ := get(api+"/v1/assistants", "sk-ops-test-key-42")
	require.Equal(t, 200, code)
	code, body := get(api+"/healthz", "")
	assert.Equal(t, 200, code, body)
	code, body = get(api+"/readyz", "")
	assert.Equal(t, 200, code, body)
	code, _ = get(api+"/metrics", "sk-ops-test-key-42")
	assert.Equal(t, 404, code, "the metrics page is not on the API's listener")

	code, body = get(metricsURL, "")
	require.Equal(t, 200, code)
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(body))
	require.NoError(t, err)
	require.Contains(t, fams, "assistants_http_requests_total")
	found := false
	for _, m := range fams["assistants_http_requests_total"].GetMetric() {
		labels := map[string]string{}
		for _, lp := range m.GetLabel() {
			labels[lp.GetName()] = lp.GetValue()
		}
		if labels["operation"] == "listAssistants" && labels["status"] == "200" {
			found = m.GetCounter().GetValue() == 1
		}
	}
	assert.True(t, found, "listAssistants 200 counted once")
	assert.NotContains(t, body, "sk-ops-test-key-42")

	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not stop after its context was cancelled")
	}
}
