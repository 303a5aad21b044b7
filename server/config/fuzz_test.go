package config

import (
	"encoding/json"
	"testing"
)

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		``, `{}`, `[]`, `null`, `{"HOSTNAME": "kts01.example.com"}`,
		`{"HOSTNAME": "kts", "DB_PORT": 5432, "MAX_DEPOSIT_BYTES": 4096, "TLS_MIN_VERSION": "tlsv1.3"}`,
		`{"SSL_CIPHER_LIST": "AES256:CAMELLIA256-SHA", "SSL_PRIVATE_KEY_PASSWORD_SCRIPT": "/bin/echo -n password"}`,
		`{"DB_PORT": 1e3}`, `{"DB_PORT": "1"}`, `{"DB_PORT": null}`, `{"HOSTNAME": "a", "HOSTNAME": "b"}`,
		`{"SSL_CIPHERS": "HIGH"}`, `{"HOSTNAME": "kts"} x`, `{"HOSTNAME": "\u0000"}`, "{\"LISTEN_ADDRESS\": \"[::1]:1\"}",
		`{"MAX_DEPOSIT_BYTES": -1}`, `{"MAX_DEPOSIT_BYTES": 99999999999999999999}`, `{"HOSTNAME": "kts", `,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if err != nil {
			if !equal(c, Config{}) {
				t.Fatalf("Parse returned %+v with error %v", c, err)
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("Parse accepted a configuration that does not validate: %v\n%+v", err, c)
		}
		// What Save would write reads back the same.
		out, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		c2, err := Parse(out)
		if err != nil {
			t.Fatalf("re-parsing %s: %v", out, err)
		}
		if !equal(c2, c) {
			t.Fatalf("round trip changed %+v into %+v", c, c2)
		}
	})
}
