package config

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func writeConf(t *testing.T, dir, data string, mode os.FileMode) {
	t.Helper()
	path := filepath.Join(dir, FileName)
	if err := os.WriteFile(path, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // not subject to the umask
		t.Fatal(err)
	}
}

func TestDefault(t *testing.T) {
	c := Default("kts01.example.com")
	want := Config{
		Hostname:                "kts01.example.com",
		ListenAddress:           ":11371",
		SSLCertificate:          ".ssl/ssl-cert-keytrustee.pem",
		SSLPrivateKey:           ".ssl/ssl-cert-keytrustee-pk.pem",
		TLSMinVersion:           "tlsv1.2",
		DBHost:                  "127.0.0.1",
		DBPort:                  11381,
		DBName:                  "keytrustee",
		DBUser:                  "keytrustee",
		DBPasswordFile:          "db.password",
		MaxDepositBytes:         1 << 20,
		ServerKey:               "server-key.asc",
		Keyring:                 "deposit-keyring.json",
		SessionKey:              "session.key",
		DBDataDir:               "db",
		Role:                    "active",
		ReplicationPasswordFile: "replication.password",
		HSMStateKey:             "kts-state",
		HSMSealState:            true,
		HSMDataKeyCacheSeconds:  60,
		SMTPPort:                25,
		SMTPTLS:                 "starttls",
		ReplicationFrom:         []string{"127.0.0.1/32", "::1/128"},
		DBClientsFrom:           []string{"127.0.0.1/32", "::1/128"},
		DBParameters:            map[string]string{},
	}
	if !equal(c, want) {
		t.Errorf("Default() =\n%+v\nwant\n%+v", c, want)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("the default configuration is invalid: %v", err)
	}
	if h, _ := os.Hostname(); Default("").Hostname != h {
		t.Errorf("Default(\"\").Hostname = %q, want the system host name %q", Default("").Hostname, h)
	}
}

func TestSaveLoadRoundTrip(t *testing.T) {
	dir := t.TempDir()
	c := Default("kts01.example.com")
	c.SSLPrivateKeyPasswordScript = "/usr/local/bin/kts-key-password --vault prod"
	c.SSLCertificateChain = "/etc/pki/ca-chain.pem"
	c.TLSMinVersion = "tlsv1.3"
	c.SSLCipherList = "ECDHE+AESGCM:!aNULL"
	c.DBPort = 5432
	c.MaxDepositBytes = 4096
	if err := c.Save(dir); err != nil {
		t.Fatal(err)
	}
	got, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !equal(got, c) {
		t.Errorf("Load after Save =\n%+v\nwant\n%+v", got, c)
	}

	path := filepath.Join(dir, FileName)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(string(data), "}\n") || !strings.Contains(string(data), "\n  \"HOSTNAME\": \"kts01.example.com\",\n") ||
		!strings.Contains(string(data), `"ECDHE+AESGCM:!aNULL"`) {
		t.Errorf("not indented JSON with a trailing newline:\n%s", data)
	}

	// Saving again replaces the file and leaves no temporary files behind.
	c.Hostname = "kts02.example.com"
	if err := c.Save(dir); err != nil {
		t.Fatal(err)
	}
	if got, err := Load(dir); err != nil || got.Hostname != "kts02.example.com" {
		t.Errorf("Load after second Save = %q, %v", got.Hostname, err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only %s", len(entries), FileName)
	}
}

func TestSaveRefusesInvalid(t *testing.T) {
	dir := t.TempDir()
	c := Default("kts01.example.com")
	c.DBPort = 0
	if err := c.Save(dir); err == nil || !strings.Contains(err.Error(), "DB_PORT") {
		t.Fatalf("Save of an invalid configuration: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, FileName)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("an invalid configuration was written")
	}
	if err := Default("kts01.example.com").Save(filepath.Join(dir, "missing")); err == nil {
		t.Error("Save into a missing directory succeeded")
	}
}

func TestLoadDefaultsForMissingKeys(t *testing.T) {
	dir := t.TempDir()
	writeConf(t, dir, `{"HOSTNAME": "kts01.example.com", "DB_PORT": 5432, "SSL_CIPHER_LIST": null}`, 0o600)
	got, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := Default("kts01.example.com")
	want.DBPort = 5432
	if !equal(got, want) {
		t.Errorf("Load =\n%+v\nwant\n%+v", got, want)
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(t.TempDir())
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Load of a missing file: %v; want fs.ErrNotExist", err)
	}
}

func TestLoadWorldWritable(t *testing.T) {
	dir := t.TempDir()
	writeConf(t, dir, `{"HOSTNAME": "kts01.example.com"}`, 0o666)
	_, err := Load(dir)
	if err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("Load of a world-writable file: %v", err)
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name string
		conf string
		want []string // substrings of the error
	}{
		{"empty file", ``, []string{"empty"}},
		{"not an object", `["HOSTNAME"]`, []string{"must hold a JSON object"}},
		{"syntax error", "{\n\"HOSTNAME\": \"a\",\n\"DB_PORT\": 1 2\n}", []string{"invalid JSON on line 3"}},
		{"truncated", `{"HOSTNAME": "a"`, []string{"invalid JSON"}},
		{"trailing data", `{"HOSTNAME": "kts"} {}`, []string{"after the JSON object"}},
		{"unknown key", `{"HOSTNAME": "kts", "SSL_CIPHERS": "HIGH"}`, []string{`unknown key "SSL_CIPHERS"`, `did you mean "SSL_CIPHER_LIST"`}},
		{"misspelt key", `{"TLS_MIN_VERSON": "tlsv1.3"}`, []string{`unknown key "TLS_MIN_VERSON"`, `did you mean "TLS_MIN_VERSION"`}},
		{"lower-case key", `{"db_port": 5432}`, []string{`unknown key "db_port"`, `did you mean "DB_PORT"`}},
		{"unrelated key", `{"ORGANIZATION": "x"}`, []string{`unknown key "ORGANIZATION"`, "keys are: ACTIVE_CA, ACTIVE_DB"}},
		{"repeated key", `{"TLS_MIN_VERSION": "tlsv1.3", "TLS_MIN_VERSION": "tlsv1.2"}`, []string{"TLS_MIN_VERSION is set more than once"}},
		{"string for number", `{"DB_PORT": "5432"}`, []string{"DB_PORT: must be an integer, not a string"}},
		{"fraction", `{"MAX_DEPOSIT_BYTES": 1.5}`, []string{"MAX_DEPOSIT_BYTES: must be an integer, not 1.5"}},
		{"number for string", `{"HOSTNAME": 42}`, []string{"HOSTNAME: must be a string, not 42"}},
		{"string for boolean", `{"HSM_SEAL_STATE": "false"}`, []string{"HSM_SEAL_STATE: must be true or false, not a string"}},
		{"array for secret", `{"SSL_PRIVATE_KEY_PASSWORD_SCRIPT": ["/bin/echo", "hunter2"]}`, []string{"must be a string, not an array"}},
		{"invalid value", `{"DB_PORT": 70000}`, []string{"DB_PORT: 70000 is not a TCP port"}},
		{"several invalid values", `{"DB_PORT": 0, "TLS_MIN_VERSION": "tlsv1"}`, []string{"DB_PORT", "TLS_MIN_VERSION", "RFC 8996"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeConf(t, dir, tt.conf, 0o600)
			_, err := Load(dir)
			if err == nil {
				t.Fatalf("Load succeeded; want an error containing %q", tt.want)
			}
			if !strings.Contains(err.Error(), filepath.Join(dir, FileName)) {
				t.Errorf("error %q does not name the file", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error %q reveals a secret", err)
			}
		})
	}
}

func passiveConfig(c Config) Config {
	c.Role, c.ActiveURL, c.ActiveCA, c.ActiveDB, c.StandbyName = RolePassive, "https://kts01.example.com:11371", "active-ca.pem", "kts01.example.com:11381", "kts_passive"
	return c
}

func hsmConfig(c Config) Config {
	c.HSMModule, c.HSMTokenLabel, c.HSMPINFile = "/usr/lib/softhsm/libsofthsm2.so", "kts", "hsm.pin"
	return c
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*Config)
		want   []string // substrings of the error; nil = valid
	}{
		{"default", func(c *Config) {}, nil},
		{"IP host name", func(c *Config) { c.Hostname = "10.0.0.5" }, nil},
		{"listen on one address", func(c *Config) { c.ListenAddress = "10.0.0.5:443" }, nil},
		{"listen on IPv6", func(c *Config) { c.ListenAddress = "[::1]:11371" }, nil},
		{"TLS 1.3", func(c *Config) { c.TLSMinVersion = "TLSv1.3" }, nil},
		{"empty TLS version", func(c *Config) { c.TLSMinVersion = "" }, nil},
		{"cipher list", func(c *Config) { c.SSLCipherList = "AES256:CAMELLIA256-SHA" }, nil},
		{"password script", func(c *Config) { c.SSLPrivateKeyPasswordScript = "/bin/echo -n password" }, nil},
		{"unix socket database", func(c *Config) { c.DBHost = "/var/run/postgresql" }, nil},
		{"largest deposit", func(c *Config) { c.MaxDepositBytes = MaxDepositBytesLimit }, nil},
		{"paired active", func(c *Config) { c.StandbyName = "kts_passive" }, nil},
		{"passive", func(c *Config) { *c = passiveConfig(*c) }, nil},

		{"unknown role", func(c *Config) { c.Role = "primary" }, []string{"ROLE:", `"active" or "passive"`}},
		{"passive without active URL", func(c *Config) { *c = passiveConfig(*c); c.ActiveURL = "" }, []string{"ACTIVE_URL:"}},
		{"passive with http active URL", func(c *Config) { *c = passiveConfig(*c); c.ActiveURL = "http://kts01:11371" }, []string{"ACTIVE_URL:", "https://"}},
		{"passive without active CA", func(c *Config) { *c = passiveConfig(*c); c.ActiveCA = "" }, []string{"ACTIVE_CA:"}},
		{"passive without active DB", func(c *Config) { *c = passiveConfig(*c); c.ActiveDB = "kts01" }, []string{"ACTIVE_DB:", "HOST:PORT"}},
		{"passive without standby name", func(c *Config) { *c = passiveConfig(*c); c.StandbyName = "" }, []string{"STANDBY_NAME:"}},
		{"bad standby name", func(c *Config) { c.StandbyName = "Kts-Passive" }, []string{"STANDBY_NAME:"}},
		{"empty replication password file", func(c *Config) { c.ReplicationPasswordFile = "" }, []string{"REPLICATION_PASSWORD_FILE:"}},

		{"HSM", func(c *Config) { *c = hsmConfig(*c) }, nil},
		{"HSM PIN from the environment", func(c *Config) { *c = hsmConfig(*c); c.HSMPINFile, c.HSMPINEnv = "", "KTS_HSM_PIN" }, nil},
		{"HSM PIN from a script", func(c *Config) { *c = hsmConfig(*c); c.HSMPINFile, c.HSMPINScript = "", "/usr/local/bin/hsm-pin" }, nil},
		{"HSM token without module", func(c *Config) { *c = hsmConfig(*c); c.HSMModule = "" }, []string{"HSM_MODULE:", "no module"}},
		{"HSM module relative", func(c *Config) { *c = hsmConfig(*c); c.HSMModule = "libsofthsm2.so" }, []string{"HSM_MODULE:", "absolute path"}},
		{"HSM without token", func(c *Config) { *c = hsmConfig(*c); c.HSMTokenLabel = "" }, []string{"HSM_TOKEN_LABEL:"}},
		{"HSM without PIN", func(c *Config) { *c = hsmConfig(*c); c.HSMPINFile = "" }, []string{"HSM_PIN_FILE:", "exactly one way", "0 are set"}},
		{"HSM with two PINs", func(c *Config) { *c = hsmConfig(*c); c.HSMPINEnv = "PIN" }, []string{"exactly one way", "2 are set"}},
		{"HSM PIN variable name", func(c *Config) { *c = hsmConfig(*c); c.HSMPINFile, c.HSMPINEnv = "", "PIN=1234" }, []string{"HSM_PIN_ENV:"}},
		{"HSM PIN script relative", func(c *Config) { *c = hsmConfig(*c); c.HSMPINFile, c.HSMPINScript = "", "hsm-pin" }, []string{"HSM_PIN_SCRIPT:", "absolute path"}},
		{"mail", func(c *Config) {
			c.SMTPHost, c.SMTPPort, c.SMTPTLS, c.SMTPFrom, c.ExternalURL = "mail.example.com", 587, "starttls", "kts@example.com", "https://kts01.example.com:11371"
			c.SMTPUser, c.SMTPPasswordFile = "kts", "/etc/kts/smtp.password"
		}, nil},
		{"mail over implicit TLS", func(c *Config) { c.SMTPHost, c.SMTPPort, c.SMTPTLS = "mail.example.com", 465, "tls" }, nil},
		{"mail TLS mode", func(c *Config) { c.SMTPTLS = "ssl" }, []string{"SMTP_TLS:"}},
		{"mail port", func(c *Config) { c.SMTPPort = 0 }, []string{"SMTP_PORT:"}},
		{"mail sender", func(c *Config) { c.SMTPFrom = "not an address" }, []string{"SMTP_FROM:"}},
		{"mail password without user", func(c *Config) { c.SMTPPasswordFile = "smtp.password" }, []string{"SMTP_USER:"}},
		{"mail password twice", func(c *Config) {
			c.SMTPUser, c.SMTPPasswordFile, c.SMTPPasswordScript = "kts", "smtp.password", "/usr/local/bin/smtp-pw"
		}, []string{"SMTP_PASSWORD_FILE:", "one way"}},
		{"external URL over http", func(c *Config) { c.ExternalURL = "http://kts01.example.com" }, []string{"EXTERNAL_URL:"}},
		{"HSM without data key cache", func(c *Config) { *c = hsmConfig(*c); c.HSMDataKeyCacheSeconds = 0 }, nil},
		{"HSM data key cache too long", func(c *Config) { *c = hsmConfig(*c); c.HSMDataKeyCacheSeconds = 86400 }, []string{"HSM_DATA_KEY_CACHE_SECONDS:"}},
		{"HSM without state key", func(c *Config) { *c = hsmConfig(*c); c.HSMStateKey = "" }, []string{"HSM_STATE_KEY:"}},

		{"empty host name", func(c *Config) { c.Hostname = "" }, []string{"HOSTNAME: is empty", "fully qualified domain name"}},
		{"bad host name", func(c *Config) { c.Hostname = "https://kts.example.com" }, []string{"HOSTNAME:", "not a valid host name"}},
		{"host name with space", func(c *Config) { c.Hostname = "kts example" }, []string{"HOSTNAME:"}},
		{"listen without port", func(c *Config) { c.ListenAddress = "0.0.0.0" }, []string{"LISTEN_ADDRESS:", "HOST:PORT"}},
		{"listen on port 0", func(c *Config) { c.ListenAddress = ":0" }, []string{"LISTEN_ADDRESS:", "invalid port"}},
		{"listen on named port", func(c *Config) { c.ListenAddress = ":https" }, []string{"LISTEN_ADDRESS:", "invalid port"}},
		{"empty certificate", func(c *Config) { c.SSLCertificate = "" }, []string{"SSL_CERTIFICATE: is empty"}},
		{"empty private key", func(c *Config) { c.SSLPrivateKey = "" }, []string{"SSL_PRIVATE_KEY: is empty"}},
		{"NUL in chain", func(c *Config) { c.SSLCertificateChain = "a\x00b" }, []string{"SSL_CERTIFICATE_CHAIN: contains a NUL"}},
		{"relative password script", func(c *Config) { c.SSLPrivateKeyPasswordScript = "echo -n hunter2" }, []string{"SSL_PRIVATE_KEY_PASSWORD_SCRIPT:", `"echo" must be an absolute path`}},
		{"quoted password script", func(c *Config) { c.SSLPrivateKeyPasswordScript = `/bin/sh -c "echo hunter2"` }, []string{"SSL_PRIVATE_KEY_PASSWORD_SCRIPT:", "without a shell"}},
		{"blank password script", func(c *Config) { c.SSLPrivateKeyPasswordScript = "   " }, []string{"SSL_PRIVATE_KEY_PASSWORD_SCRIPT: holds only spaces"}},
		{"TLS 1.1", func(c *Config) { c.TLSMinVersion = "tlsv1.1" }, []string{"TLS_MIN_VERSION:", "RFC 8996"}},
		{"unknown TLS version", func(c *Config) { c.TLSMinVersion = "tls1.2" }, []string{"TLS_MIN_VERSION:", "accepted values"}},
		{"unknown cipher", func(c *Config) { c.SSLCipherList = "HIGH:BOGUS" }, []string{"SSL_CIPHER_LIST:", `"BOGUS"`}},
		{"cipher list selects nothing", func(c *Config) { c.SSLCipherList = "CAMELLIA" }, []string{"SSL_CIPHER_LIST:", "selects no TLS 1.2 cipher suite"}},
		{"empty database host", func(c *Config) { c.DBHost = "" }, []string{"DB_HOST:"}},
		{"database port 0", func(c *Config) { c.DBPort = 0 }, []string{"DB_PORT: 0 is not a TCP port"}},
		{"negative database port", func(c *Config) { c.DBPort = -1 }, []string{"DB_PORT: -1"}},
		{"database port too large", func(c *Config) { c.DBPort = 65536 }, []string{"DB_PORT: 65536"}},
		{"empty database name", func(c *Config) { c.DBName = "" }, []string{"DB_NAME:"}},
		{"long database user", func(c *Config) { c.DBUser = strings.Repeat("u", 64) }, []string{"DB_USER:", "63 bytes"}},
		{"empty database password file", func(c *Config) { c.DBPasswordFile = "" }, []string{"DB_PASSWORD_FILE: is empty"}},
		{"negative deposit size", func(c *Config) { c.MaxDepositBytes = -1 }, []string{"MAX_DEPOSIT_BYTES: -1 is out of range"}},
		{"zero deposit size", func(c *Config) { c.MaxDepositBytes = 0 }, []string{"MAX_DEPOSIT_BYTES: 0"}},
		{"huge deposit size", func(c *Config) { c.MaxDepositBytes = 1 << 40 }, []string{"MAX_DEPOSIT_BYTES:", "from 1 to"}},
		{"empty server key", func(c *Config) { c.ServerKey = "" }, []string{"SERVER_KEY: is empty"}},
		{"empty keyring", func(c *Config) { c.Keyring = "" }, []string{"KEYRING: is empty"}},
		{"empty session key", func(c *Config) { c.SessionKey = "" }, []string{"SESSION_KEY: is empty"}},
		{"empty database directory", func(c *Config) { c.DBDataDir = "" }, []string{"DB_DATA_DIR: is empty"}},
		{"every problem reported", func(c *Config) { c.DBPort = 0; c.MaxDepositBytes = -5; c.TLSMinVersion = "sslv3" },
			[]string{"DB_PORT", "MAX_DEPOSIT_BYTES", "TLS_MIN_VERSION"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default("kts01.example.com")
			tt.modify(&c)
			err := c.Validate()
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate succeeded; want an error containing %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error %q reveals the password", err)
			}
		})
	}
}

func TestPath(t *testing.T) {
	c := Default("kts01.example.com")
	tests := []struct{ confdir, p, want string }{
		{"/var/lib/keytrustee/.keytrustee", ".ssl/ssl-cert-keytrustee.pem", "/var/lib/keytrustee/.keytrustee/.ssl/ssl-cert-keytrustee.pem"},
		{"/var/lib/keytrustee/.keytrustee", "/etc/pki/cert.pem", "/etc/pki/cert.pem"},
		{"relative/dir", "db", "relative/dir/db"},
		{"/x", "", ""},
	}
	for _, tt := range tests {
		if got := c.Path(tt.confdir, tt.p); got != tt.want {
			t.Errorf("Path(%q, %q) = %q, want %q", tt.confdir, tt.p, got, tt.want)
		}
	}
}

// TestKeysMatchStruct checks that every field has a JSON key and that Keys
// lists them all.
func TestKeysMatchStruct(t *testing.T) {
	data, err := json.Marshal(Default("h"))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	if len(m) != len(Keys()) || len(m) != reflect.TypeFor[Config]().NumField() {
		t.Errorf("%d JSON keys, %d from Keys(), %d fields", len(m), len(Keys()), reflect.TypeFor[Config]().NumField())
	}
	for _, k := range Keys() {
		if _, ok := m[k]; !ok {
			t.Errorf("key %s is not marshalled", k)
		}
	}
}
