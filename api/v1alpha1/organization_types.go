package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Organization is an organization on a Key Trustee Server, as
// `keytrustee-orgtool add` makes one: its contacts, the auth code its
// clients register with, and which clients are enabled or disabled. The
// operator keeps the organization on the server in line with the spec, and
// sets the auth code again whenever its Secret changes. The auth code never
// appears in the status or in events.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=ktsorg,categories=trustee
// +kubebuilder:printcolumn:name="Server",type=string,JSONPath=`.spec.serverRef.name`,description="The KeyTrusteeServer the organization is on"
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`,description="Whether the organization on the server matches the spec"
// +kubebuilder:printcolumn:name="Active",type=integer,JSONPath=`.status.clients.active`,description="Clients allowed to use deposits"
// +kubebuilder:printcolumn:name="Pending",type=integer,JSONPath=`.status.clients.pending`,description="Clients waiting to be enabled"
// +kubebuilder:printcolumn:name="Disabled",type=integer,JSONPath=`.status.clients.disabled`,description="Disabled clients"
// +kubebuilder:printcolumn:name="UUID",type=string,JSONPath=`.status.uuid`,priority=1,description="The organization's UUID on the server"
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="has(self.spec.organizationName) || (self.metadata.name.size() <= 64 && !self.metadata.name.contains('.'))",message="metadata.name is not an organization name (at most 64 letters, digits, '-' or '_', no '.'): set spec.organizationName"
type Organization struct {
	metav1.TypeMeta `json:",inline"`
	// metadata is the object's metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the organization the user asks for.
	// +required
	Spec OrganizationSpec `json:"spec"`

	// status is what the operator last observed.
	// +optional
	Status OrganizationStatus `json:"status,omitempty"`
}

// OrganizationSpec is the desired state of an organization.
//
// +kubebuilder:validation:XValidation:rule="has(self.organizationName) == has(oldSelf.organizationName)",message="spec.organizationName cannot be added or removed: the organization on the server keeps its name"
type OrganizationSpec struct {
	// serverRef is the KeyTrusteeServer, in the same namespace, that holds
	// the organization. It cannot change.
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec.serverRef cannot change: the organization lives in that server's database"
	// +required
	ServerRef ServerReference `json:"serverRef"`

	// organizationName is the organization's name on the server, the one
	// clients register with (`kts client register --org NAME`): letters,
	// digits, '-' and '_', starting with a letter or digit, at most 64.
	// Empty means metadata.name. It cannot change.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9][A-Za-z0-9_-]*$`
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec.organizationName cannot change: the organization on the server keeps its name"
	// +optional
	OrganizationName string `json:"organizationName,omitempty"`

	// contacts are the e-mail addresses of the organization's
	// administrators; they are told when a client registers.
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MaxLength=254
	// +kubebuilder:validation:items:Pattern=`^[^\s@,]+@[^\s@,]+$`
	// +required
	Contacts []string `json:"contacts"`

	// authCodeSecretRef is the key of a Secret holding the auth code clients
	// register with: a client presenting it is active at once, any other
	// waits, pending, until enabled. When the Secret changes, the operator
	// sets the new code on the server; clients registered before keep
	// working. An empty value requires no code: every client that registers
	// is active at once.
	// +required
	AuthCodeSecretRef SecretKeySelector `json:"authCodeSecretRef"`

	// clients enables and disables registered clients by fingerprint.
	// Clients in neither list keep the state they have on the server.
	// +optional
	Clients OrganizationClients `json:"clients,omitempty"`
}

// OrganizationClients lists clients to enable and to disable, by the
// fingerprint of their OpenPGP key: 40 upper-case hexadecimal digits, as
// `kts org list-clients` prints them.
//
// +kubebuilder:validation:XValidation:rule="!has(self.enable) || !has(self.disable) || self.enable.all(f, !(f in self.disable))",message="a client fingerprint is in both clients.enable and clients.disable: keep it in one"
type OrganizationClients struct {
	// enable lists the clients allowed to use deposits: pending clients are
	// activated, disabled ones enabled again.
	// +listType=set
	// +kubebuilder:validation:MaxItems=512
	// +kubebuilder:validation:items:Pattern=`^[0-9A-F]{40}$`
	// +kubebuilder:validation:items:MaxLength=40
	// +optional
	Enable []string `json:"enable,omitempty"`

	// disable lists the clients refused (HTTP 403) from now on.
	// +listType=set
	// +kubebuilder:validation:MaxItems=512
	// +kubebuilder:validation:items:Pattern=`^[0-9A-F]{40}$`
	// +kubebuilder:validation:items:MaxLength=40
	// +optional
	Disable []string `json:"disable,omitempty"`
}

// OrganizationStatus is what the operator last observed of an organization.
type OrganizationStatus struct {
	// observedGeneration is the metadata.generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions: Ready.
	// +listType=map
	// +listMapKey=type
	// +patchStrategy=merge
	// +patchMergeKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty" patchStrategy:"merge" patchMergeKey:"type"`

	// uuid is the organization's UUID on the server.
	// +optional
	UUID string `json:"uuid,omitempty"`

	// clients counts the organization's registered clients by state.
	// +optional
	Clients ClientCounts `json:"clients,omitempty"`

	// authCodeSecretVersion is the resourceVersion of the auth code Secret
	// whose value was last set on the server: a change of the Secret is seen
	// by comparing it. It is never the code itself.
	// +optional
	AuthCodeSecretVersion string `json:"authCodeSecretVersion,omitempty"`
}

// ClientCounts counts an organization's clients by state.
type ClientCounts struct {
	// active clients may use deposits.
	// +optional
	Active int32 `json:"active"`

	// pending clients registered and wait to be enabled.
	// +optional
	Pending int32 `json:"pending"`

	// disabled clients are refused.
	// +optional
	Disabled int32 `json:"disabled"`
}

// OrganizationList is a list of Organizations.
//
// +kubebuilder:object:root=true
type OrganizationList struct {
	metav1.TypeMeta `json:",inline"`
	// metadata is the list's metadata.
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`
	// items are the organizations.
	Items []Organization `json:"items"`
}
