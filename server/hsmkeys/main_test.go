package hsmkeys_test

import (
	"testing"

	"trustee.dev/trustee/server/pg/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }
