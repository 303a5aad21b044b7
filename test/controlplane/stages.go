package controlplane

import (
	"fmt"
	"os"
	"path/filepath"
)

// ImagePullFails is the image that no pod can pull here: the simulated
// image pull failure. kwok pulls no image, so every other image "pulls";
// a pod whose containers name this one stays Pending instead, its
// containers waiting with ErrImagePull (the init containers; the others
// PodInitializing behind them), and never becomes ready, as a pod with a
// mistyped image does on a real node. The Stage that plays it
// (stageImagePullFails) is given to kwok beside kwok's own.
const ImagePullFails = "registry.invalid/trustee:image-pull-fails"

// stageImagePullFails is the kwok Stage of ImagePullFails. It matches the
// same pending pods as kwok's pod-ready Stage, and wins by its weight
// (pod-ready has none). It keeps matching once played, and its status
// holds no time but the pod's creation, so that playing it again changes
// nothing (kwok patches only what changes) and pod-ready never gets its
// turn.
var stageImagePullFails = fmt.Sprintf(`apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: pod-image-pull-fails
spec:
  resourceRef:
    apiGroup: v1
    kind: Pod
  selector:
    matchExpressions:
    - key: '.metadata.deletionTimestamp'
      operator: 'DoesNotExist'
    - key: '.spec.containers.[].image'
      operator: 'In'
      values:
      - %[1]q
  weight: 1000
  next:
    statusTemplate: |
      {{ $since := .metadata.creationTimestamp }}
      {{ $init := .spec.initContainers }}
      {{ $failed := "failed to pull image %[1]s: simulated image pull failure" }}
      conditions:
      - lastTransitionTime: {{ $since | Quote }}
        status: "False"
        reason: ContainersNotInitialized
        type: Initialized
      - lastTransitionTime: {{ $since | Quote }}
        status: "False"
        reason: ContainersNotReady
        type: Ready
      - lastTransitionTime: {{ $since | Quote }}
        status: "False"
        reason: ContainersNotReady
        type: ContainersReady
      initContainerStatuses:
      {{ range .spec.initContainers }}
      - image: {{ .image | Quote }}
        name: {{ .name | Quote }}
        ready: false
        restartCount: 0
        state:
          waiting:
            reason: ErrImagePull
            message: {{ $failed | Quote }}
      {{ end }}
      containerStatuses:
      {{ range .spec.containers }}
      - image: {{ .image | Quote }}
        name: {{ .name | Quote }}
        ready: false
        restartCount: 0
        started: false
        state:
          waiting:
            {{ if $init }}
            reason: PodInitializing
            {{ else }}
            reason: ErrImagePull
            message: {{ $failed | Quote }}
            {{ end }}
      {{ end }}
      hostIP: {{ NodeIPWith .spec.nodeName | Quote }}
      phase: Pending
      startTime: {{ $since | Quote }}
`, ImagePullFails)

// writeStages writes the Stages of this package into dir and returns
// their files, for kwok's --config.
func writeStages(dir string) ([]string, error) {
	p := filepath.Join(dir, "pod-image-pull-fails.yaml")
	if err := os.WriteFile(p, []byte(stageImagePullFails), 0o600); err != nil {
		return nil, err
	}
	return []string{p}, nil
}
