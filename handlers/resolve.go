package handlers

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"

	"github.com/digitoll/digitoll-worker/contract"
	"github.com/digitoll/digitoll-worker/toll"
)

// Finding out instead of guessing: when a declaration's answer was lost
// after Toll may have processed it, Toll has no idempotency key and
// DIGITOLL.md documents no query by document number, so a repeat may meet
// the first attempt as a duplicate ("… is already in use"). What Toll does
// offer, and what each case can learn from it:
//
//   - create of a master or house whose parent's MRN is known (the
//     accepted result of the submission named in `after`, a transport for
//     a master, a master for a house): the parent's status-with-descendants
//     lists what Toll received under it, by document number and with MRNs.
//     A child with this declaration's document number, which the query API
//     knows as the integration's own (entry/status answers it; the query
//     APIs answer only for the integration's own declarations: assumed of
//     Toll, as the simulator does), is the declaration: accepted with that
//     MRN.
//   - cancel of a transport or master: its own status-with-descendants
//     says CANCELLED.
//   - create of a transport, or of a master or house without a known
//     parent, and cancel of a house: no lookup exists. The validation
//     status needs the requestId that was lost, and the routing feed
//     carries routing decisions, not receipts: Toll need not route a
//     declaration before the goods approach the border, hours later (the
//     simulator routes at once, which real Toll does not promise), so it
//     cannot answer while the message waits. The result is then
//     unresolved (contract.StatusUnresolved), never rejected.
//   - update: a repeat sends the same whole declaration again, which Toll
//     takes as one more update; nothing needs finding.
//
// The lookup runs before a repeat (so that a found declaration is not
// sent twice) and after a repeat's duplicate FAILURE (Toll may list a
// declaration only once it has validated it).

// Statuses of declarations in a status-with-descendants answer that mean
// Toll does not hold a live declaration (the simulator's words).
const (
	treeCancelled   = "CANCELLED"
	treeNotReceived = "NOT_RECEIVED"
)

// lookup looks for the declaration of req at Toll after an attempt whose
// answer was lost; repeatID is the requestId of a repeat Toll refused as
// a duplicate, or "". It reports false when Toll offers no lookup for the
// case or the declaration was not found.
func (m *Movement) lookup(ctx context.Context, req Request, repeatID string, log *slog.Logger) (Outcome, bool) {
	q := m.Toll
	sub := req.Submission
	switch sub.Operation {
	case contract.OpCreate:
		parent, ok := parentLevel(sub.Level)
		if !ok || req.AfterMRN == "" {
			return Outcome{}, false
		}
		doc := documentNumber(sub.Level, sub.Declaration)
		if doc == "" {
			return Outcome{}, false
		}
		tree, err := q.StatusWithDescendants(ctx, m.API, parent, req.AfterMRN)
		if err != nil {
			log.InfoContext(ctx, "could not look for the declaration under its parent", "parentLevel", string(parent), "parentMrn", req.AfterMRN, "error", err.Error())
			return Outcome{}, false
		}
		for _, c := range tree.Root.Children {
			if c.DocumentNumber != doc || c.MRN == "" || strings.EqualFold(c.Status, treeCancelled) || strings.EqualFold(c.Status, treeNotReceived) {
				continue
			}
			if _, err := q.EntryStatus(ctx, m.API, c.MRN); err != nil {
				// 404: another integration's declaration with the same
				// number; any other failure: not confirmed.
				log.InfoContext(ctx, "a declaration with this document number is under the parent, but not confirmed as this integration's",
					"documentNumber", doc, "foundMrn", c.MRN, "error", err.Error())
				continue
			}
			log.InfoContext(ctx, "found the declaration whose answer was lost under its parent", "documentNumber", doc, "mrn", c.MRN,
				"parentLevel", string(parent), "parentMrn", req.AfterMRN)
			note := fmt.Sprintf("Toll's answer to an attempt was lost; the declaration (document number %s) was found with status-with-descendants of %s %s",
				doc, parent, req.AfterMRN)
			if repeatID != "" {
				note += fmt.Sprintf("; requestId %s is a repeat Toll refused as a duplicate of it", repeatID)
			}
			return Outcome{Status: contract.StatusAccepted, MRN: c.MRN, Note: note}, true
		}
		return Outcome{}, false

	case contract.OpDelete:
		if sub.Level == contract.LevelHouseConsignment || sub.MRN == "" {
			return Outcome{}, false
		}
		tree, err := q.StatusWithDescendants(ctx, m.API, sub.Level, sub.MRN)
		if err != nil || !strings.EqualFold(tree.Root.Status, treeCancelled) {
			if err != nil {
				log.InfoContext(ctx, "could not look up the declaration to cancel", "error", err.Error())
			}
			return Outcome{}, false
		}
		log.InfoContext(ctx, "the declaration is cancelled: an attempt whose answer was lost cancelled it")
		note := "Toll's answer to an attempt was lost; status-with-descendants shows the declaration CANCELLED"
		if repeatID != "" {
			note += fmt.Sprintf("; requestId %s is a repeat Toll refused because of it", repeatID)
		}
		return Outcome{Status: contract.StatusAccepted, MRN: sub.MRN, Note: note}, true
	}
	return Outcome{}, false
}

// failure turns a FAILURE (or a 400) that follows an attempt whose answer
// was lost into the outcome that is true:
//   - errors that may be Toll meeting the earlier attempt
//     (toll.SplitEarlierAttempt) and nothing else: the declaration is
//     looked for; found, it is accepted; not found, or where Toll offers
//     no lookup, the result is unresolved, never rejected;
//   - any other validation error: rejected. Toll validates the content,
//     and every attempt sends the same content, so the earlier attempt
//     would have failed for the same reasons and Toll holds nothing of
//     it. (An earlier-attempt error beside them then concerns another
//     declaration with the same number.) This assumes that Toll's
//     verdict on a body does not change between attempts minutes apart;
//     the note says so.
func (m *Movement) failure(ctx context.Context, req Request, requestID string, errs []contract.FieldError, log *slog.Logger) Outcome {
	earlier, other := toll.SplitEarlierAttempt(errs)
	if len(earlier) == 0 || len(other) > 0 {
		log.InfoContext(ctx, "toll refused the declaration after an unanswered attempt, for reasons of its content", "errors", len(errs))
		return Outcome{Status: contract.StatusRejected, RequestID: requestID, Errors: errs, Note: rejectedAfterLostNote}
	}
	if out, found := m.lookup(ctx, req, requestID, log); found {
		return out
	}
	sub := req.Submission
	note := fmt.Sprintf("an earlier attempt may have reached Toll without its answer reaching the worker, and Toll refused a repeat%s as a duplicate; ", idPart(requestID))
	if doc := documentNumber(sub.Level, sub.Declaration); doc != "" {
		note += fmt.Sprintf("%s %s with document number %s: ", sub.Operation, sub.Level, doc)
	}
	note += unresolvedWhy(req)
	log.WarnContext(ctx, "toll may hold the declaration but offers no way to find it: unresolved", "errors", len(errs))
	return Outcome{Status: contract.StatusUnresolved, RequestID: requestID, Errors: errs, Note: note}
}

// rejectedAfterLostNote is the note of a rejection that follows an attempt
// whose answer was lost.
const rejectedAfterLostNote = "an earlier attempt's answer was lost; Toll refused the declaration for its content, " +
	"which every attempt sent alike, so the earlier attempt was not accepted either"

// unresolvedWhy says why the declaration could not be looked up and how
// to check, for the note of an unresolved result.
func unresolvedWhy(req Request) string {
	sub := req.Submission
	switch {
	case sub.Operation == contract.OpCreate && sub.Level == contract.LevelTransport:
		return "Toll has no lookup of a transport by its identification number, so whether it holds this one is unknown; " +
			"check in Toll's portal, or with `digitoll status` once the transport's MRN is known (a producer that still has it)"
	case sub.Operation == contract.OpCreate && req.AfterMRN == "":
		return "its parent's MRN is unknown (no accepted `after`), so it could not be looked for under the parent; " +
			"check with `digitoll status` on the parent's MRN, where it is listed by document number"
	case sub.Operation == contract.OpCreate:
		return fmt.Sprintf("it is not listed as this integration's under %s (status-with-descendants): another declaration may use the number; "+
			"check with `digitoll status` on that MRN", req.AfterMRN)
	case sub.Operation == contract.OpDelete:
		return fmt.Sprintf("Toll lists no cancelled house consignment, so the cancel of %s cannot be confirmed; "+
			"check with `digitoll status` on its master's MRN, where a live house is still listed", sub.MRN)
	}
	return "the declaration could not be looked up; check in Toll's portal"
}

func idPart(requestID string) string {
	if requestID == "" {
		return ""
	}
	return " (requestId " + requestID + ")"
}

// parentLevel is the level whose status-with-descendants lists declarations
// of level.
func parentLevel(level contract.Level) (contract.Level, bool) {
	switch level {
	case contract.LevelMasterConsignment:
		return contract.LevelTransport, true
	case contract.LevelHouseConsignment:
		return contract.LevelMasterConsignment, true
	}
	return "", false
}

// documentNumber reads the number that identifies a declaration of level
// (DIGITOLL.md's example bodies): the transport means' identification
// number, or the master's or house's transport document number; "" when
// the body has none.
func documentNumber(level contract.Level, body []byte) string {
	var d struct {
		Master struct {
			Doc struct {
				Number string `json:"documentNumber"`
			} `json:"transportDocumentMasterLevel"`
		} `json:"consignmentMasterLevel"`
		House struct {
			Doc struct {
				Number string `json:"documentNumber"`
			} `json:"transportDocumentHouseLevel"`
		} `json:"consignmentHouseLevel"`
	}
	if len(body) == 0 {
		return ""
	}
	switch level {
	case contract.LevelTransport:
		// The transport's consignmentMasterLevel is a list; read only
		// the means.
		var t struct {
			Means struct {
				ID string `json:"identificationNumber"`
			} `json:"activeBorderTransportMeans"`
		}
		if json.Unmarshal(body, &t) != nil {
			return ""
		}
		return t.Means.ID
	case contract.LevelMasterConsignment:
		if json.Unmarshal(body, &d) != nil {
			return ""
		}
		return d.Master.Doc.Number
	case contract.LevelHouseConsignment:
		if json.Unmarshal(body, &d) != nil {
			return ""
		}
		return d.House.Doc.Number
	}
	return ""
}
