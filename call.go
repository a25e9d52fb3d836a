package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

func call(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("call", flag.ContinueOnError)
	url := fs.String("url", "http://127.0.0.1:8080", "server base `URL`")
	token := fs.String("token", "", "merchant access `token` (Authorization: Bearer)")
	timeout := fs.Duration("timeout", 30*time.Second, "request timeout")
	pos, err := parseFlags(fs, args, stderr)
	if err != nil {
		return err
	}
	if len(pos) < 1 || len(pos) > 2 {
		return usageError{"call: want METHOD [PARAMS_JSON]"}
	}
	params := json.RawMessage("{}")
	if len(pos) == 2 {
		params = json.RawMessage(pos[1])
		if !json.Valid(params) {
			return usageError{"call: PARAMS_JSON is not valid JSON"}
		}
	}
	body, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 1, "method": pos[0], "params": params})
	req, err := http.NewRequest(http.MethodPost, strings.TrimSuffix(*url, "/")+"/rpc", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if *token != "" {
		req.Header.Set("Authorization", "Bearer "+*token)
	}
	resp, err := (&http.Client{Timeout: *timeout}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var out struct {
		Result json.RawMessage `json:"result"`
		Error  *struct {
			Code    int             `json:"code"`
			Message string          `json:"message"`
			Data    json.RawMessage `json:"data"`
		} `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return fmt.Errorf("call: HTTP %s: unreadable answer: %w", resp.Status, err)
	}
	if out.Error != nil {
		return fmt.Errorf("call: error %d %s: %s", out.Error.Code, out.Error.Message, out.Error.Data)
	}
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, out.Result, "", "  "); err != nil {
		return err
	}
	pretty.WriteByte('\n')
	_, err = pretty.WriteTo(stdout)
	return err
}
