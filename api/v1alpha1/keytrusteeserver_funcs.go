package v1alpha1

// HighAvailabilityEnabled reports whether the server runs a passive member:
// spec.highAvailability.enabled, true when unset (the API server's default).
func (k *KeyTrusteeServer) HighAvailabilityEnabled() bool {
	e := k.Spec.HighAvailability.Enabled
	return e == nil || *e
}
