package config

import (
	"fmt"
	"slices"
	"strings"
)

// singleTenantSettings are the settings of the environment's tenant,
// which a tenants file replaces.
var singleTenantSettings = []string{
	"DIGITOLL_CLIENT_ID", "DIGITOLL_KEY_FILE", "DIGITOLL_KEY_ID", "DIGITOLL_CERT_FILE",
	"DIGITOLL_P12_FILE", "DIGITOLL_P12_PASSWORD_FILE", "DIGITOLL_FOREIGN", "DIGITOLL_KINDS",
}

// Warnings lists what in c is allowed but probably not meant, a sentence
// each: single-tenant settings that a tenants file makes ignored, and
// secret files that their group may read. Start-up logs them and goes on;
// `config check` shows them.
func (c *Config) Warnings() []string {
	out := c.Ignored()
	var secrets []natsFile
	if c.TenantsFile == "" {
		t := c.Tenant
		secrets = append(secrets, natsFile{"DIGITOLL_KEY_FILE", t.KeyFile, true}, natsFile{"DIGITOLL_P12_FILE", t.P12File, true},
			natsFile{"DIGITOLL_P12_PASSWORD_FILE", t.P12PasswordFile, true})
	}
	secrets = append(secrets, natsFiles(c.NATS)...)
	for _, f := range secrets {
		if f.path == "" || !f.secret {
			continue
		}
		if mode, group, err := PrivateFile(f.path); err == nil && group {
			out = append(out, fmt.Sprintf("%s: %s is readable by its group (mode %04o): chmod 600 %s unless the group is only the worker", f.env, f.path, mode, f.path))
		}
	}
	return out
}

// Ignored lists the settings given (by a flag or a variable) that have no
// effect: the single-tenant settings when a tenants file is set. It is one
// sentence naming them all, or nothing.
func (c *Config) Ignored() []string {
	var out []string
	if c.TenantsFile != "" {
		var ignored []string
		for _, env := range singleTenantSettings {
			if c.given[env] {
				ignored = append(ignored, env)
			}
		}
		switch len(ignored) {
		case 0:
		case 1:
			out = append(out, fmt.Sprintf("%s is ignored: DIGITOLL_TENANTS_FILE is set, and each tenant's entry in %s says its own", ignored[0], c.TenantsFile))
		default:
			out = append(out, fmt.Sprintf("%s are ignored: DIGITOLL_TENANTS_FILE is set, and each tenant's entry in %s says its own", strings.Join(ignored, ", "), c.TenantsFile))
		}
	}
	return out
}

// UnknownVariables warns about the DIGITOLL_* variables in environ
// ("NAME=value" pairs, as os.Environ gives them) that are neither a
// setting nor named in also (the variables of other commands): most often
// a typo, which would otherwise leave a setting at its default without a
// word. A close setting is suggested. Values are never repeated.
func UnknownVariables(environ []string, also ...string) []string {
	known := map[string]bool{}
	var names []string
	for _, s := range Settings() {
		known[s.Env] = true
		names = append(names, s.Env)
	}
	for _, a := range also {
		known[a] = true
		names = append(names, a)
	}
	var unknown []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "DIGITOLL_") && !known[name] && !slices.Contains(unknown, name) {
			unknown = append(unknown, name)
		}
	}
	slices.Sort(unknown)
	out := make([]string, 0, len(unknown))
	for _, name := range unknown {
		w := name + " is not a setting of digitoll; it is ignored"
		if best := closest(name, names); best != "" {
			w += fmt.Sprintf(" (did you mean %s?)", best)
		}
		out = append(out, w)
	}
	return out
}

// closest is the name of names nearest to name, if it is near enough to
// be a typo of it: a few letters' edit away.
func closest(name string, names []string) string {
	best, bestDist := "", 0
	for _, n := range names {
		d := editDistance(strings.TrimPrefix(name, "DIGITOLL_"), strings.TrimPrefix(n, "DIGITOLL_"))
		if best == "" || d < bestDist {
			best, bestDist = n, d
		}
	}
	limit := 2
	if len(name) > 20 {
		limit = 3
	}
	if best == "" || bestDist > limit {
		return ""
	}
	return best
}

// editDistance is the Levenshtein distance of a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
