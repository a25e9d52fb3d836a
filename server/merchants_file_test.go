package server_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sessiond/sessiond/server"
	"github.com/sessiond/sessiond/session"
)

func TestReadMerchantsFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil { // past the umask
			t.Fatal(err)
		}
		return p
	}
	good := write("good", "# shop\npk_a:sk_a\n\n  pk_b:sk_b:whsec_AAAA  \n", 0o600)
	got, err := server.ReadMerchantsFile(good)
	want := []session.Credentials{{PublicKey: "pk_a", Secret: "sk_a"}, {PublicKey: "pk_b", Secret: "sk_b", CallbackSecret: "whsec_AAAA"}}
	if err != nil || len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("ReadMerchantsFile: %+v, %v; want %+v", got, err, want)
	}
	if _, err := server.ReadMerchantsFile(write("readonly", "pk_a:sk_a\n", 0o400)); err != nil {
		t.Errorf("mode 0400: %v", err)
	}
	for _, mode := range []os.FileMode{0o640, 0o604, 0o644, 0o660, 0o602} {
		_, err := server.ReadMerchantsFile(write("open", "pk_a:sk_a\n", mode))
		if err == nil || !strings.Contains(err.Error(), "chmod 600") {
			t.Errorf("mode %04o: %v, want a refusal that says chmod 600", mode, err)
		}
	}
	_, err = server.ReadMerchantsFile(write("bad", "pk_a:sk_a\npk_only_and_secret_sk_leak\n", 0o600))
	if err == nil || !strings.Contains(err.Error(), "line 2") || strings.Contains(err.Error(), "sk_leak") {
		t.Errorf("a bad line: %v, want its number and not its content", err)
	}
	_, err = server.ReadMerchantsFile(write("badwhsec", "pk_a:sk_a\npk_b:sk_b:not_a_whsec_leak\n", 0o600))
	if err == nil || !strings.Contains(err.Error(), "line 2") || !strings.Contains(err.Error(), "whsec_") || strings.Contains(err.Error(), "leak") {
		t.Errorf("a callback secret without whsec_: %v, want its line number, the prefix wanted and not its content", err)
	}
	if _, err := server.ReadMerchantsFile(filepath.Join(dir, "missing")); err == nil {
		t.Error("a missing file was accepted")
	}
}
