package gateway

import "github.com/outposthq/outpost/rules"

// addRules makes the rules of a reloaded set known to the dashboard: a
// rule it did not know is published as inactive, replacing a retained
// document an earlier run may have left. Rules no longer in the set keep
// their topic; the reload ends their instances (resolved or inactive), so
// their document ends inactive. The ruler calls it on its goroutine.
func (d *dashboard) addRules(set *rules.Set) {
	if !d.alerts || set == nil {
		return
	}
	added := false
	d.mu.Lock()
	for _, r := range set.Rules {
		if r == nil || d.rules[r.Name] != nil || !validLevel(r.Name) {
			continue
		}
		rs := d.newRule(r.Name, r.Severity)
		d.rules[r.Name] = rs
		rs.dirty = true
		d.dirty = append(d.dirty, rs)
		added = true
	}
	d.mu.Unlock()
	if added {
		poke(d.wake)
	}
}
