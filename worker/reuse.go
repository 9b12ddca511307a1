package worker

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
)

// One id, one submission: a producer repeating a message (a retry after a
// timeout, a replay from the DLQ) gets the recorded result again, silently;
// but a message reusing an id for another submission would otherwise be
// answered with the first one's result as if it had been sent. The state
// record keeps a digest of the submission that owns the id, and a message
// whose digest differs is dead-lettered "malformed" with an error that says
// so. It gets no dead-lettered result: the id's one result (CONTRACT.md
// invariant 1) is the first submission's, and a second one on the same
// subject would read as that submission's fate. The DLQ entry keeps the
// message for the operators, and the producer sends it again under a new
// id.

// submissionDigest is the hex SHA-256 of a readable body with the
// whitespace between its JSON tokens removed: the same for repeats of the
// same bytes (a producer's retry, a replay from the DLQ) and for a body
// only spaced otherwise; a change of any value, the metadata included, or
// of the order of the fields, is another submission. It depends on the
// bytes alone, not on how this version decodes them, so that a record
// written by one version is recognised by the next: it is the digest of
// what json.Compact makes of the body, hashed as the body is read rather
// than compacted into a copy first, since every message needs it. body
// has parsed as JSON; should it end inside a string, no digest is
// recorded and the id is not checked.
func submissionDigest(body []byte) string {
	h := sha256.New()
	// The compacted bytes go to h in blocks: a Write per run of bytes
	// between whitespace would be one per token of an indented body.
	var block [1024]byte
	n := 0
	inString, escaped := false, false
	for _, c := range body {
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			continue // whitespace between tokens
		}
		if n == len(block) {
			h.Write(block[:n])
			n = 0
		}
		block[n] = c
		n++
	}
	if inString {
		return ""
	}
	h.Write(block[:n])
	var sum [sha256.Size]byte
	return hex.EncodeToString(h.Sum(sum[:0]))
}

// idReused dead-letters a message whose id the record st gives to another
// submission, without a result and without touching the record.
func (j *job) idReused(st *state, digest string) {
	j.noResult = true
	j.deadLetter(reasonMalformed, fmt.Errorf(
		"id %q was already used by tenant %s for another submission of kind %s (stream sequence %d, digest %.12s; this one %.12s, phase %s): one id names one submission; send this one under a new id",
		j.d.id, j.d.tenant, j.d.kind, st.Seq, st.Digest, digest, st.Phase))
}

// recordMalformed looks at the record of the id read leniently from an
// unreadable message before it is dead-lettered. Without one, the message
// is recorded as dead-lettered (the journal creates the record), so that a
// submission naming it in after is answered at once rather than at its
// deadline. With one of another message that is not dead-lettered, the id
// belongs to that submission: the dead letter gets no result. A record
// that cannot be read does not hold the dead letter up.
func (j *job) recordMalformed(tenant string) {
	key := stateKey(tenant, j.d.kind, j.d.id)
	ctx, cancel := j.opCtx()
	st, _, err := loadState(ctx, j.r.kv, key)
	cancel()
	switch {
	case err != nil:
		j.log.Debug("reading the state of an unreadable message's id failed; dead-lettering it without a record", "error", err)
	case st == nil:
		j.journal = newJournal(j.r.kv, key, nil, 0, j.d.seq, j.d.delivery, j.w.cfg.Now)
	case st.Seq != j.d.seq:
		j.noResult = st.Phase != phaseDeadLettered
	}
}
