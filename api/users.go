package api

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	cronium "github.com/cronium/executor"
	"github.com/cronium/executor/store"
)

// auditActions names the changes and triggers the audit log records, by
// route. A request that fails is not recorded.
var auditActions = map[string]string{
	"POST /v1/users":                    "user.create",
	"DELETE /v1/users/{name}":           "user.delete",
	"PUT /v1/users/{name}/tier":         "user.set-tier",
	"POST /v1/users/{name}/keys":        "key.create",
	"DELETE /v1/users/{name}/keys/{id}": "key.revoke",
	"POST /v1/events":                   "event.apply",
	"PUT /v1/events/{name}":             "event.apply",
	"DELETE /v1/events/{name}":          "event.delete",
	"POST /v1/events/{name}/pause":      "event.pause",
	"POST /v1/events/{name}/resume":     "event.resume",
	"POST /v1/events/{name}/trigger":    "event.trigger",
	"POST /v1/executions/{id}/cancel":   "execution.cancel",
	"POST /v1/executions/{id}/debug":    "execution.debug",
	"DELETE /v1/executions/{id}/kept":   "execution.release",
	"PUT /v1/variables/{key}":           "variable.set",
	"DELETE /v1/variables/{key}":        "variable.delete",
	"PUT /v1/secrets/{name}":            "secret.set",
	"DELETE /v1/secrets/{name}":         "secret.delete",
	"PUT /v1/channels/{name}":           "channel.set",
	"DELETE /v1/channels/{name}":        "channel.delete",
	"POST /v1/images/build":             "image.build",
}

// auditNote is what a handler adds to its audit entry: the target when the
// path does not say it, and a detail such as the execution it queued.
type auditNote struct{ target, detail string }

type auditKey struct{}

// noteAudit lets a handler say what its audit entry should record.
func noteAudit(r *http.Request, target, detail string) {
	if n, ok := r.Context().Value(auditKey{}).(*auditNote); ok {
		if target != "" {
			n.target = target
		}
		n.detail = detail
	}
}

// withAudit prepares r for the audit entry of its route, if it has one.
func withAudit(r *http.Request, route string) (*http.Request, *auditNote, string) {
	action := auditActions[route]
	if action == "" || r.URL.Query().Get("dry_run") == "true" {
		return r, nil, ""
	}
	note := &auditNote{}
	return r.WithContext(context.WithValue(r.Context(), auditKey{}, note)), note, action
}

// audit records a successful change; a failure to record is logged, not
// returned: the change is made.
func (s *Server) audit(r *http.Request, u *cronium.User, key store.KeyInfo, action string, note *auditNote) {
	target := note.target
	if target == "" {
		var parts []string
		for _, p := range []string{r.PathValue("name"), r.PathValue("key"), r.PathValue("id")} {
			if p != "" {
				parts = append(parts, p)
			}
		}
		target = strings.Join(parts, "/")
		owner := u.Name
		if o := r.URL.Query().Get("user"); o != "" {
			owner = o
		}
		switch action {
		case "user.create", "user.delete", "user.set-tier", "key.create", "key.revoke":
		default:
			target = owner + "/" + target
		}
	}
	e := store.AuditEntry{Actor: u.Name, KeyID: key.ID, Action: action, Target: target, Detail: note.detail, Source: r.RemoteAddr}
	if err := s.cfg.Store.Audit(context.WithoutCancel(r.Context()), e); err != nil {
		s.log.Error("audit log", "action", action, "target", target, "err", err)
	}
}

// userFor returns the user named in the path: any user for an admin, only
// themselves for others (anyone else is not found, as for events).
func (s *Server) userFor(r *http.Request, u *cronium.User) (cronium.User, error) {
	name := r.PathValue("name")
	if name != u.Name && !u.Admin {
		return cronium.User{}, &Error{Status: http.StatusNotFound, Code: "not_found", Message: "not found: user " + name}
	}
	return s.cfg.Store.UserByName(r.Context(), name)
}

func adminOnly(u *cronium.User, what string) error {
	if !u.Admin {
		return &Error{Status: http.StatusForbidden, Code: "forbidden", Message: "only admins " + what}
	}
	return nil
}

func (s *Server) listUsers(w http.ResponseWriter, r *http.Request, u *cronium.User) error {
	if err := adminOnly(u, "list users"); err != nil {
		return err
	}
	users, err := s.cfg.Store.Users(r.Context())
	if err != nil {
		return err
	}
	if users == nil {
		users = []cronium.User{}
	}
	return writeJSON(w, http.StatusOK, map[string]any{"items": users})
}

func (s *Server) getUser(w http.ResponseWriter, r *http.Request, u *cronium.User) error {
	target, err := s.userFor(r, u)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, target)
}

func (s *Server) deleteUser(w http.ResponseWriter, r *http.Request, u *cronium.User) error {
	if err := adminOnly(u, "delete users"); err != nil {
		return err
	}
	if r.PathValue("name") == u.Name {
		return cronium.Invalid("name", u.Name, "is you: an admin cannot delete themselves; another admin can")
	}
	target, err := s.cfg.Store.UserByName(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	if err := s.cfg.Store.DeleteUser(r.Context(), target.ID, time.Now()); err != nil {
		return err
	}
	// Their running executions are stopped; nothing of theirs runs again.
	running, err := s.cfg.Store.Executions(r.Context(), store.ExecutionFilter{UserID: target.ID, Status: cronium.StatusRunning, Limit: 1000})
	if err != nil {
		return err
	}
	for _, x := range running {
		if err := s.cfg.Dispatcher.Cancel(r.Context(), x.ID, "its user was deleted by "+u.Name); err != nil && !errors.Is(err, cronium.ErrConflict) {
			s.log.Warn("cancel a deleted user's execution", "execution_id", x.ID, "err", err)
		}
	}
	s.cfg.Scheduler.Notify()
	w.WriteHeader(http.StatusNoContent)
	return nil
}

type setTierBody struct {
	Tier string `json:"tier"`
}

func (s *Server) setTier(w http.ResponseWriter, r *http.Request, u *cronium.User) error {
	if err := adminOnly(u, "change tiers"); err != nil {
		return err
	}
	var b setTierBody
	if err := decode(r, &b); err != nil {
		return err
	}
	if _, ok := s.cfg.Tiers[b.Tier]; !ok {
		return cronium.Invalid("tier", b.Tier, "is not a tier: want one of "+cronium.TierNames(s.cfg.Tiers))
	}
	target, err := s.cfg.Store.UserByName(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	if err := s.cfg.Store.SetTier(r.Context(), target.ID, b.Tier); err != nil {
		return err
	}
	noteAudit(r, "", "tier "+target.Tier+" -> "+b.Tier)
	target.Tier = b.Tier
	// Events the new tier no longer allows would fail at their next run:
	// say which, now.
	evs, err := s.cfg.Store.Events(r.Context(), target.ID)
	if err != nil {
		return err
	}
	tier := s.tier(target)
	out := TierChange{User: target}
	for _, ev := range evs {
		if err := ev.Normalize(tier); err != nil {
			out.EventsOverTier = append(out.EventsOverTier, ev.Name+": "+err.Error())
		}
	}
	return writeJSON(w, http.StatusOK, out)
}

// TierChange is the answer of PUT /v1/users/{name}/tier: the user, and
// their events the new tier does not allow (they fail at their next run
// until changed).
type TierChange struct {
	cronium.User
	EventsOverTier []string `json:"events_over_tier,omitempty"`
}

type createKeyBody struct {
	Name string `json:"name"`
	// ExpiresIn is how long the key works, like "720h" or "30d"; empty: no expiry.
	ExpiresIn string `json:"expires_in"`
}

func (s *Server) createKey(w http.ResponseWriter, r *http.Request, u *cronium.User) error {
	target, err := s.userFor(r, u)
	if err != nil {
		return err
	}
	var b createKeyBody
	if r.ContentLength != 0 {
		if err := decode(r, &b); err != nil {
			return err
		}
	}
	if len(b.Name) > 64 {
		return cronium.Invalid("name", b.Name, "is too long: at most 64 characters")
	}
	if b.Name == DashboardKeyName && !FromDashboard(r.Context()) {
		return cronium.Invalid("name", b.Name, "is reserved for the dashboard's session keys: choose another name")
	}
	var expires *time.Time
	if b.ExpiresIn != "" {
		d, err := cronium.ParseKeyLife("expires_in", b.ExpiresIn)
		if err != nil {
			return err
		}
		at := time.Now().Add(d).UTC()
		expires = &at
	}
	key, info, err := s.cfg.Store.NewKey(r.Context(), target.ID, b.Name, expires)
	if err != nil {
		return err
	}
	info.User = target.Name
	noteAudit(r, target.Name+"/key "+strconv.FormatInt(info.ID, 10), "")
	return writeJSON(w, http.StatusCreated, map[string]any{"user": target.Name, "key": key, "info": info})
}

func (s *Server) listKeys(w http.ResponseWriter, r *http.Request, u *cronium.User) error {
	target, err := s.userFor(r, u)
	if err != nil {
		return err
	}
	keys, err := s.cfg.Store.Keys(r.Context(), target.ID)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]any{"items": keys})
}

func (s *Server) revokeKey(w http.ResponseWriter, r *http.Request, u *cronium.User) error {
	target, err := s.userFor(r, u)
	if err != nil {
		return err
	}
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id < 1 {
		return cronium.Invalid("id", r.PathValue("id"), "is not a key ID: `cronium key list` shows them")
	}
	info, err := s.cfg.Store.RevokeKey(r.Context(), target.ID, id, time.Now())
	if err != nil {
		return err
	}
	noteAudit(r, target.Name+"/key "+strconv.FormatInt(id, 10), "")
	return writeJSON(w, http.StatusOK, info)
}

func (s *Server) auditLog(w http.ResponseWriter, r *http.Request, u *cronium.User) error {
	if err := adminOnly(u, "read the audit log"); err != nil {
		return err
	}
	q := r.URL.Query()
	f := store.AuditFilter{Actor: q.Get("actor"), Action: q.Get("action")}
	if v := q.Get("since"); v != "" {
		d, err := cronium.ParseDuration("since", v)
		if err != nil {
			return err
		}
		f.Since = time.Now().Add(-d)
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return cronium.Invalid("limit", v, "is not a count: want 1-1000")
		}
		f.Limit = n
	}
	entries, err := s.cfg.Store.AuditLog(r.Context(), f)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]any{"items": entries})
}
