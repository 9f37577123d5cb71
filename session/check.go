package session

import (
	"fmt"

	cronium "github.com/cronium/executor"
	"github.com/cronium/executor/agent"
)

// CheckSpec checks a spec for any engine and fills its defaults: the id
// (a new one when empty), limits, profile, network mode and the runtime
// image of its language from images. An error names the field at fault.
func CheckSpec(spec *cronium.Spec, images map[cronium.Language]string) error {
	if spec.ID == "" {
		spec.ID = cronium.NewID()
	}
	if !ValidID(spec.ID) {
		return cronium.Invalid("id", spec.ID, "is not an id: use letters, digits, '-' and '_' only, at most 64")
	}
	if _, err := cronium.ParseLanguage("language", string(spec.Language)); err != nil {
		return err
	}
	if len(spec.Script) == 0 {
		return cronium.Invalid("script", "", "is empty: give the script's source")
	}
	size := len(spec.Script) + len(spec.Input)
	for _, b := range spec.Files {
		size += len(b)
	}
	// The start message carries them base64-encoded: 4/3 of their size.
	if size*4/3 > agent.MaxFrame-64<<10 {
		return cronium.Invalid("script", "", fmt.Sprintf("input and files together are %d bytes, above the %d byte maximum", size, (agent.MaxFrame-64<<10)*3/4))
	}
	if err := cronium.CheckFiles("files", spec.Files, cronium.Size(agent.MaxFrame)); err != nil {
		return err
	}
	spec.Limits = spec.Limits.Defaults()
	if err := spec.Limits.Validate(); err != nil {
		return err
	}
	if spec.Profile.Name == "" {
		p, _ := cronium.LookupProfile("profile", "")
		spec.Profile = p
	}
	if err := spec.Network.Normalize("network"); err != nil {
		return err
	}
	if spec.Network.Mode == "" {
		spec.Network.Mode = spec.Profile.Network
	}
	if spec.Network.Mode == "" {
		spec.Network.Mode = cronium.NetworkNone
	}
	if spec.Image == "" {
		spec.Image = images[spec.Language]
		if spec.Image == "" {
			return cronium.Invalid("image", "", "is empty and no runtime image is configured for "+string(spec.Language)+": run `cronium images build`")
		}
	}
	for k := range spec.Env {
		if err := cronium.CheckEnvName("env", k); err != nil {
			return err
		}
	}
	return nil
}

// ValidID reports whether id can name an execution or sandbox: letters,
// digits, '-' and '_', at most 64.
func ValidID(id string) bool {
	if len(id) == 0 || len(id) > 64 {
		return false
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}
