// Command kts is Trustee, a Kubernetes-native Key Trustee Server. One binary
// plays every role; see `kts --help`.
package main

import (
	"os"

	"trustee.dev/trustee/cmd"
)

func main() {
	os.Exit(cmd.Execute(os.Args))
}
