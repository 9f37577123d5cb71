package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	cronium "github.com/cronium/executor"
	"github.com/cronium/executor/dispatch"
	"github.com/cronium/executor/store"
)

func (s *Server) listVariables(w http.ResponseWriter, r *http.Request, u *cronium.User) error {
	o, err := s.owner(r, u)
	if err != nil {
		return err
	}
	vars, err := s.cfg.Store.Variables(r.Context(), o.ID)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]any{"items": vars})
}

func variableKey(r *http.Request) (string, error) {
	k := r.PathValue("key")
	return k, cronium.CheckVariable(k, nil)
}

// ownerAndKey resolves whose variable a request names, and its key.
func (s *Server) ownerAndKey(r *http.Request, u *cronium.User) (cronium.User, string, error) {
	o, err := s.owner(r, u)
	if err != nil {
		return o, "", err
	}
	k, err := variableKey(r)
	return o, k, err
}

func (s *Server) getVariable(w http.ResponseWriter, r *http.Request, u *cronium.User) error {
	o, k, err := s.ownerAndKey(r, u)
	if err != nil {
		return err
	}
	v, err := s.cfg.Store.Variable(r.Context(), o.ID, k)
	if err != nil {
		return err
	}
	if v == nil {
		return fmt.Errorf("%w: variable %s", cronium.ErrNotFound, k)
	}
	return writeJSON(w, http.StatusOK, map[string]any{"key": k, "value": v})
}

type variableBody struct {
	Value json.RawMessage `json:"value"`
}

func (s *Server) putVariable(w http.ResponseWriter, r *http.Request, u *cronium.User) error {
	o, k, err := s.ownerAndKey(r, u)
	if err != nil {
		return err
	}
	var b variableBody
	if err := decode(r, &b); err != nil {
		return err
	}
	if b.Value == nil {
		b.Value = []byte{}
	}
	if err := cronium.CheckVariable(k, b.Value); err != nil {
		return err
	}
	if err := s.cfg.Store.SetVariable(r.Context(), o.ID, k, b.Value); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]any{"key": k, "value": b.Value})
}

func (s *Server) deleteVariable(w http.ResponseWriter, r *http.Request, u *cronium.User) error {
	o, k, err := s.ownerAndKey(r, u)
	if err != nil {
		return err
	}
	ok, err := s.cfg.Store.DeleteVariable(r.Context(), o.ID, k)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%w: variable %s", cronium.ErrNotFound, k)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// secretInfo is all the API ever says of a secret: never its value.
type secretInfo struct {
	Name      string    `json:"name"`
	UpdatedAt time.Time `json:"updated_at"`
}

func (s *Server) listSecrets(w http.ResponseWriter, r *http.Request, u *cronium.User) error {
	o, err := s.owner(r, u)
	if err != nil {
		return err
	}
	list, err := s.cfg.Store.Secrets(r.Context(), o.ID)
	if err != nil {
		return err
	}
	items := []secretInfo{}
	for _, sec := range list {
		items = append(items, secretInfo{Name: sec.Name, UpdatedAt: sec.UpdatedAt})
	}
	return writeJSON(w, http.StatusOK, map[string]any{"items": items})
}

type secretBody struct {
	Value string `json:"value"`
}

func (s *Server) putSecret(w http.ResponseWriter, r *http.Request, u *cronium.User) error {
	o, err := s.owner(r, u)
	if err != nil {
		return err
	}
	name := r.PathValue("name")
	if !cronium.ValidSecretName(name) {
		return cronium.Invalid("name", name, "is not a secret name: 1-128 letters, digits, '_', '-' or '.', not starting with '.'")
	}
	if s.cfg.Keyring == nil {
		return fmt.Errorf("%w: secrets are disabled: no master key is configured (master_key_file or CRONIUM_MASTER_KEYS)", cronium.ErrUnavailable)
	}
	var b secretBody
	if err := decode(r, &b); err != nil {
		return err
	}
	if b.Value == "" || len(b.Value) > 64<<10 {
		return cronium.Invalid("value", "", "must be 1 byte to 64 KiB")
	}
	keyID, blob, err := s.cfg.Keyring.Seal([]byte(b.Value), dispatch.SecretAAD(o.ID, name))
	if err != nil {
		return err
	}
	if err := s.cfg.Store.PutSecret(r.Context(), store.SealedSecret{UserID: o.ID, Name: name, KeyID: keyID, Blob: blob}); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, secretInfo{Name: name, UpdatedAt: time.Now().UTC().Truncate(time.Second)})
}

func (s *Server) deleteSecret(w http.ResponseWriter, r *http.Request, u *cronium.User) error {
	o, err := s.owner(r, u)
	if err != nil {
		return err
	}
	if refs, err := s.referrers(r.Context(), o, func(ev cronium.Event) bool { return slices.Contains(ev.Secrets, r.PathValue("name")) }); err != nil {
		return err
	} else if len(refs) > 0 {
		return fmt.Errorf("%w: secret %s is used by event %s: remove it from their secrets first", cronium.ErrConflict, r.PathValue("name"), strings.Join(refs, ", "))
	}
	ok, err := s.cfg.Store.DeleteSecret(r.Context(), o.ID, r.PathValue("name"))
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%w: secret %s", cronium.ErrNotFound, r.PathValue("name"))
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
