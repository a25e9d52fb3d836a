package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
)

var callCmd = &command{
	name:    "call",
	summary: "make one JSON-RPC call to a running server and print the result",
	args:    "[flags] METHOD [PARAMS_JSON]",
	long: `PARAMS_JSON defaults to {}. A JSON-RPC error is printed with its code and
data, and the exit code is 1.`,
	setup: func(f *flagSet) func(*cmdEnv, []string) error {
		url, token, timeout := "http://127.0.0.1:8080", "", 30*time.Second
		f.String(&url, "url", "URL", "server base URL")
		f.String(&token, "token", "TOKEN", "merchant access token, sent as Authorization: Bearer")
		f.Duration(&timeout, "timeout", "how long to wait for the answer")
		return func(env *cmdEnv, pos []string) error {
			return call(env, url, token, timeout, pos)
		}
	},
}

func call(env *cmdEnv, url, token string, timeout time.Duration, pos []string) error {
	stdout := env.stdout
	if len(pos) < 1 || len(pos) > 2 {
		return usagef("sessiond call: want METHOD [PARAMS_JSON], such as: sessiond call rpc.discover")
	}
	params := json.RawMessage("{}")
	if len(pos) == 2 {
		params = json.RawMessage(pos[1])
		if !json.Valid(params) {
			return usagef("sessiond call: PARAMS_JSON is not valid JSON; want an object such as '{\"id\":\"…\"}'")
		}
	}
	body, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 1, "method": pos[0], "params": params})
	req, err := http.NewRequest(http.MethodPost, strings.TrimSuffix(url, "/")+"/rpc", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := (&http.Client{Timeout: timeout}).Do(req)
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
