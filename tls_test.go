package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sessiond/sessiond/server"
)

// writeSelfSigned writes a self-signed certificate for 127.0.0.1 with the
// serial to certFile and keyFile, and returns it.
func writeSelfSigned(t *testing.T, certFile, keyFile string, serial int64) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: "sessiond test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	// Written beside and renamed in, as a certificate renewal does.
	for file, block := range map[string]*pem.Block{certFile: {Type: "CERTIFICATE", Bytes: der}, keyFile: {Type: "PRIVATE KEY", Bytes: kb}} {
		if err := os.WriteFile(file+".new", pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(file+".new", file); err != nil {
			t.Fatal(err)
		}
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// TestTLS serves HTTPS with a self-signed certificate made here, links
// use https, and Reload (SIGHUP) switches new connections to a renewed
// certificate while a bad one is refused and the old one kept.
func TestTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	first := writeSelfSigned(t, certFile, keyFile, 1)
	p := startMain(t, filepath.Join(dir, "sessiond.db"), func(c *server.Config) {
		withMerchant("pk_tls", "sk_tls", "")(c)
		c.TLSCert, c.TLSKey = certFile, keyFile
	})
	if !strings.HasPrefix(p.url, "https://127.0.0.1:") {
		t.Fatalf("URL() = %q, want https://127.0.0.1:…", p.url)
	}
	// served asks for /readyz on a new connection trusting only cert,
	// and returns the serial of the certificate the server showed.
	served := func(cert *x509.Certificate) (int64, error) {
		pool := x509.NewCertPool()
		pool.AddCert(cert)
		client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
		defer client.CloseIdleConnections()
		resp, err := client.Get(p.url + "/readyz")
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("readyz over TLS: %s", resp.Status)
		}
		return resp.TLS.PeerCertificates[0].SerialNumber.Int64(), nil
	}
	if serial, err := served(first); err != nil || serial != 1 {
		t.Fatalf("first certificate: serial %d, %v", serial, err)
	}
	if resp, err := http.Get("http://" + strings.TrimPrefix(p.url, "https://") + "/readyz"); err == nil && resp.StatusCode == 200 {
		t.Errorf("plain HTTP answered 200 on the TLS port")
	}

	// create_deposit links use https.
	tlsClient := func(cert *x509.Certificate) {
		pool := x509.NewCertPool()
		pool.AddCert(cert)
		http.DefaultTransport.(*http.Transport).TLSClientConfig = &tls.Config{RootCAs: pool}
	}
	tlsClient(first)
	t.Cleanup(func() { http.DefaultTransport.(*http.Transport).TLSClientConfig = nil })
	token := authorize(t, p.url, "pk_tls", "sk_tls")
	var created struct{ URL string }
	mustCall(t, p.url, token, "session.create_deposit", map[string]any{"amount": "5", "country_id": "se"}, &created)
	if !strings.HasPrefix(created.URL, p.url+"/client/") {
		t.Errorf("payment link %q, want it under %s", created.URL, p.url)
	}
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()

	second := writeSelfSigned(t, certFile, keyFile, 2)
	if done, err := p.Reload(); err != nil || strings.Join(done, ",") != "tls_certificate" {
		t.Fatalf("Reload: %v, %v", done, err)
	}
	if serial, err := served(second); err != nil || serial != 2 {
		t.Errorf("after reload: serial %d, %v; want the renewed certificate 2", serial, err)
	}

	os.WriteFile(keyFile, []byte("not a key"), 0o600)
	if _, err := p.Reload(); err == nil {
		t.Errorf("Reload with a broken key: nil error")
	}
	if serial, err := served(second); err != nil || serial != 2 {
		t.Errorf("after a failed reload: serial %d, %v; want certificate 2 still served", serial, err)
	}
}
