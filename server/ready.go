package server

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
)

// readyInfo is what the ready file holds: where to reach the server.
type readyInfo struct {
	URL         string `json:"url"`
	PID         int    `json:"pid"`
	AdminSocket string `json:"admin_socket"`
}

// LocalURL returns a URL clients on this machine can dial: URL, with an
// unspecified listen host (0.0.0.0, ::) replaced by 127.0.0.1. Valid
// after Open.
func (m *Main) LocalURL() string {
	if m.ln == nil {
		return ""
	}
	addr, ok := m.ln.Addr().(*net.TCPAddr)
	if !ok || !addr.IP.IsUnspecified() {
		return m.URL()
	}
	return fmt.Sprintf("http://127.0.0.1:%d", addr.Port)
}

// announce tells the world the server is ready: the plain "listening on"
// line on Stdout, and the ready file, written atomically (a temporary file
// renamed into place), so a reader never sees half of it.
func (m *Main) announce() error {
	if m.cfg.Stdout != nil {
		fmt.Fprintf(m.cfg.Stdout, "sessiond listening on %s\n", m.LocalURL())
	}
	if m.cfg.ReadyFile == "" {
		return nil
	}
	b, err := json.Marshal(readyInfo{URL: m.LocalURL(), PID: os.Getpid(), AdminSocket: m.adminSocket()})
	if err != nil {
		return err
	}
	dir, name := filepath.Split(m.cfg.ReadyFile)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+name+".*")
	if err != nil {
		return fmt.Errorf("ready file: %w", err)
	}
	_, werr := f.Write(append(b, '\n'))
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(f.Name(), m.cfg.ReadyFile)
	}
	if werr != nil {
		os.Remove(f.Name())
		return fmt.Errorf("ready file: %w", werr)
	}
	return nil
}

// adminSocket is the admin socket's path for the ready file; "" when
// the server has none.
func (m *Main) adminSocket() string {
	if m.adminLn == nil {
		return ""
	}
	return m.cfg.AdminSocket
}

// unannounce removes the ready file, so that a stopped server does not
// look ready.
func (m *Main) unannounce() {
	if m.cfg.ReadyFile != "" {
		if err := os.Remove(m.cfg.ReadyFile); err != nil && !os.IsNotExist(err) {
			m.log.Warn().Err(err).Msg("cannot remove the ready file")
		}
	}
}
