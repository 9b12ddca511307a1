// Package simulator is an in-process HTTP simulator of Maskinporten and of
// Tolletaten's Digitoll APIs (Toll), strict enough that a client which
// works against it has a good chance of working against the real
// services. The worker's tests, demo, benchmarks and `digitoll sim` run
// against it.
//
// # Maskinporten
//
// Under URL()+"/maskinporten/": the metadata document
// (.well-known/oauth-authorization-server) and the token endpoint
// (TokenURL). A token request is a form body (never URL parameters) with
// grant_type urn:ietf:params:oauth:grant-type:jwt-bearer and a JWT grant
// in assertion, checked like Maskinporten does:
//   - alg RS256, RS384 or RS512; exactly one of kid and x5c in the header;
//   - the client is found by iss; kid must be its KeyID or one of its
//     MoreKeys and the grant verify with that key, or the x5c leaf
//     (standard base64 DER) must equal its Certificate, be valid now and
//     verify the grant;
//   - exactly the claims aud, iss, scope, iat, exp, jti; aud = Issuer()
//     (with the trailing slash); exp-iat at most 120 s; iat and exp
//     within 10 s of the clock; a jti is refused while a grant carrying it
//     could still be valid ("Grant is used before").
//
// Errors are {error, error_description}: invalid_request and
// unsupported_grant_type for a malformed request, invalid_grant ("Invalid
// assertion. Client authentication failed. …") for a bad grant,
// invalid_client (401) for an unknown client, invalid_scope "Not
// authorized to request scope <scope>" for a scope not granted.
// Access tokens are opaque random strings.
//
// # Toll
//
// Under TollBaseURL(): the token exchange access/external/oauth/token
// (form fields grant_type=token-exchange, subject_token_type=access_token,
// subject_token=<a live Maskinporten token from this simulator>, and no
// others) issues opaque Toll tokens for the same client and scopes. Every
// API call needs "Authorization: Bearer <Toll token>": missing, unknown or
// expired gives 401, a token without the API's scope 403.
//
// The movement APIs are road (movement/road/v2, query
// movement/road/status/v2, scope toll:movement/road/v2 or
// toll:eu/movement/road/v2) and air (movement/air/v1, query
// movement/air/status/v1, scope toll:movement/air or toll:eu/movement/air),
// each with the levels transport, master-consignment and
// house-consignment, and test-auth. Air uses the same body shapes as road.
//
// Writes (POST <level>, PUT <level>/{mrn}, DELETE <level>/{mrn}) need
// Content-Type application/json (else 415) and are validated at once:
// a JSON object, the required fields of the level (documentIssueDate
// everywhere, and those of the examples in DIGITOLL.md), date-times
// (documentIssueDate and every …DateAndTime… field) in exactly
// yyyy-MM-ddTHH:mm:ssZ, and a well-formed MRN in the path. Every error
// found is reported in one 400 {"validationErrors":[{field, error}]}.
// A DELETE body is optional. A valid write answers 202 {"requestId"}; its
// validation-status answers 404 until the validation delay has passed,
// then 200 SUCCESS with the MRN, or 202 FAILURE with a validationErrorList.
// A requestId of another level, API or client is 404.
//
// A create gets a new MRN (<yy>NO<14 uppercase letters or digits>); an
// update keeps it; a cancel marks the declaration cancelled. Validation
// FAILs when
//   - a create uses a document number that a live (not cancelled)
//     declaration of the same level already uses ("Transport document
//     number HWB-0001 is already in use");
//   - an update or cancel names an MRN that is unknown, of another level
//     or client, or cancelled;
//   - the body holds a trigger value, for demos and tests that need a
//     rejection: TriggerRejectGoods ("REJECT") as a house consignment's
//     goodsDescription, or TriggerFailure ("SIM-FAILURE") as the value of
//     any string field.
//
// The document number of a declaration (for duplicates and
// Stats.Submissions) is, by level: house-consignment
// consignmentHouseLevel.transportDocumentHouseLevel.documentNumber,
// master-consignment
// consignmentMasterLevel.transportDocumentMasterLevel.documentNumber,
// transport activeBorderTransportMeans.identificationNumber.
//
// The query APIs also answer <query>/transport/{mrn}/status-with-descendants
// and <query>/master-consignment/{mrn}/status-with-descendants (the
// masters and houses linked by document numbers, with their MRNs, status
// and gross mass) and <query>/entry/status/{mrn} (validEntry false until
// MarkEntered).
//
// # Entry presentation
//
// POST movement/presentation/v1/entry-summary-declaration (scope
// toll:movement/entry or toll:eu/movement/entry) with
// {"requestId":"<uuid>","customsOfficeOfPresentation":"NO351001","mrn":"<MRN>"}
// presents the goods of a declaration. It needs Content-Type
// application/json; the requestId must be a UUID the client has not used
// in an accepted presentation before (else "requestId already used", as
// Toll documents), the office two uppercase letters and six digits, the
// MRN a road or air declaration of the caller, of any level, not
// cancelled. Every error found is reported in one 400 {"validationErrors"}.
// Success is 200 with an empty body; entry/status of the MRN then answers
// validEntry true with the office and the time of presentation (as
// MarkEntered), and Stats.Presentations counts it.
//
// # Routing feeds
//
// GET movement/routing/v1/house-consignment and
// GET movement/routing/v1/transport (scope toll:movement/entry or
// toll:eu/movement/entry) answer 200 with a JSON array of up to
// Config.RoutingPageSize signals (default 1000, SetRoutingPageSize) after
// the one whose routingResult.id is the marker query parameter, from the
// start without one; an empty array means caught up, a marker the feed
// does not hold is 400. Each client has its own two feeds. When the
// SUCCESS of a create or update of a house consignment or transport
// becomes visible (its validation delay has passed), one signal is
// appended to the feed of its level, with a fresh id (opaque to clients;
// a random part makes a restarted simulator's ids new) and routing
// TO_ENTRY, or TO_CONTROL when TriggerControl ("SIM-CONTROL") is the
// value of any string field of the declaration:
//
//	{"entrySummaryDeclarationMRN":"<MRN>",
//	 "transportDocumentHouseLevel":{"referenceNumber":"HWB-0001","type":"N750"},
//	 "activeBorderTransportMeans":{…},
//	 "routingResult":{"id":"rt-4fzq-1","routing":"TO_ENTRY","documentIssueDate":"<when visible>"}}
//
// A house signal carries the house's transport document, and the
// activeBorderTransportMeans of a live transport of the same client that
// lists the house's master document, if there is one; a transport signal
// carries its activeBorderTransportMeans. AddRoutingSignals appends
// synthetic signals, for tests that page through long feeds.
//
// # Documents
//
// POST goodsdeclaration/document/v2/declaration-id/{declarationId}/document
// (scope toll:goodsdeclaration/document.write or
// toll:eu/goodsdeclaration/document.write) takes multipart/form-data (else
// 415) of exactly two parts in this order: metadata, with Content-Type
// application/json and the object {"declarationId","documentType"} (no
// other fields), then file, with a filename. The declaration id in the
// path is nine digits, a real date as ddmmyyyy and a sequence number
// (123456789-01092023-1) and the metadata's must equal it; documentType is
// faktura, tillatelser, fraktregning, opprinnelsesdokumentasjon or
// fraktbrev; the file's extension is pdf, jpg, png, txt, doc, docx, xls or
// xlsx (any case), its Content-Type, if sent, that extension's media type
// or application/octet-stream, and it is not empty. Every error found is
// reported in one 400 {"validationErrors"}. A file over MaxDocumentBytes
// (10 MiB) is 413. The body is read as a stream and the file hashed on
// the way, never held. Success is 201 {"documentId":"<uuid>"}, and
// Documents lists the upload with its size and SHA-256. Uploading the
// same file again is accepted as another document (Toll's behaviour is
// not documented).
//
// # Faults and statistics
//
// SetFaults injects latency, 503 and 429 (Retry-After: 1) answers and
// connection resets into Toll API calls, before authentication, takes
// Maskinporten or the exchange down (503 server_error), and makes writes
// (POST, PUT, DELETE, presentations included) lose their answer: processed
// in full, then the connection is dropped; or hold it (AnswerDelay), so
// that a client killed meanwhile never hears. Stats returns a snapshot of
// requests per route, grants and exchanges per client and scope, every
// declaration request with its outcome, and presentations per MRN.
//
// Nothing secret is logged: one debug line per request, with method,
// path, route, client, status and the reason for a refusal.
package simulator
