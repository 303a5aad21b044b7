package controllers

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
)

// fieldOwner is the operator's name in managedFields.
const fieldOwner = client.FieldOwner("trustee-operator")

// apply makes the object in the cluster match desired (server-side apply:
// fields the operator does not set, such as those other controllers or
// users own, are left alone), owned by owner when it is not nil.
func apply(ctx context.Context, c client.Client, scheme *runtime.Scheme, owner client.Object, desired client.Object) error {
	if owner != nil {
		if err := controllerutil.SetControllerReference(owner, desired, scheme); err != nil {
			return err
		}
	}
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(desired)
	if err != nil {
		return err
	}
	delete(m, "status")
	if md, ok := m["metadata"].(map[string]any); ok {
		delete(md, "creationTimestamp")
	}
	u := &unstructured.Unstructured{Object: m}
	if err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), fieldOwner, client.ForceOwnership); err != nil {
		return fmt.Errorf("apply %s %s: %w", u.GetKind(), u.GetName(), err)
	}
	return nil
}
