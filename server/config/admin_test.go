package config

import (
	"strings"
	"testing"
)

func TestValidateAdmin(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*Config)
		want   []string // substrings of the error; nil = valid
	}{
		{"off by default", func(c *Config) {}, nil},
		{"on", func(c *Config) { c.AdminListenAddress, c.AdminCAFile = ":11373", "/etc/kts/admin-ca/ca.crt" }, nil},
		{"on one address", func(c *Config) { c.AdminListenAddress, c.AdminCAFile = "127.0.0.1:11373", "admin-ca.pem" }, nil},
		{"same port on another address", func(c *Config) {
			c.ListenAddress, c.AdminListenAddress, c.AdminCAFile = "10.0.0.5:11371", "127.0.0.1:11371", "admin-ca.pem"
		}, nil},
		{"CA file without listener", func(c *Config) { c.AdminCAFile = "admin-ca.pem" }, nil},

		{"listener without CA file", func(c *Config) { c.AdminListenAddress = ":11373" },
			[]string{"ADMIN_CA_FILE: is empty", "ADMIN_LISTEN_ADDRESS turns the admin API on", "CA certificates that sign admin client certificates"}},
		{"listener without port", func(c *Config) { c.AdminListenAddress, c.AdminCAFile = "0.0.0.0", "ca.pem" },
			[]string{"ADMIN_LISTEN_ADDRESS:", "HOST:PORT"}},
		{"listener on the API's port", func(c *Config) { c.AdminListenAddress, c.AdminCAFile = ":11371", "ca.pem" },
			[]string{"ADMIN_LISTEN_ADDRESS:", "port of its own"}},
		{"listener on the API's port, one address", func(c *Config) {
			c.ListenAddress, c.AdminListenAddress, c.AdminCAFile = "127.0.0.1:11371", ":11371", "ca.pem"
		}, []string{"ADMIN_LISTEN_ADDRESS:", "port of its own"}},
		{"NUL in CA file", func(c *Config) { c.AdminListenAddress, c.AdminCAFile = ":11373", "a\x00b" },
			[]string{"ADMIN_CA_FILE: contains a NUL"}},
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
		})
	}
}

func TestAdminKeysRoundTrip(t *testing.T) {
	c, err := Parse([]byte(`{"HOSTNAME": "kts01.example.com", "ADMIN_LISTEN_ADDRESS": ":11373", "ADMIN_CA_FILE": "/etc/kts/admin-ca/ca.crt"}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.AdminListenAddress != ":11373" || c.AdminCAFile != "/etc/kts/admin-ca/ca.crt" {
		t.Errorf("parsed %q, %q", c.AdminListenAddress, c.AdminCAFile)
	}
	dir := t.TempDir()
	if err := c.Save(dir); err != nil {
		t.Fatal(err)
	}
	if got, err := Load(dir); err != nil || !equal(got, c) {
		t.Errorf("Load after Save = %+v, %v", got, err)
	}
	if _, err := Parse([]byte(`{"HOSTNAME": "kts01.example.com", "ADMIN_LISTEN_ADDRESS": ":11373"}`)); err == nil || !strings.Contains(err.Error(), "ADMIN_CA_FILE") {
		t.Errorf("a listener without a CA parsed: %v", err)
	}
}
