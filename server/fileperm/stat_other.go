//go:build !unix

package fileperm

// Current is the zero Account where files have no Unix owners.
func Current() Account { return Account{} }

// Gather finds nothing to check where files have no Unix owners.
func Gather(path, what string) ([]File, error) { return nil, nil }
