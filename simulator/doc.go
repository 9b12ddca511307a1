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
//   - the client is found by iss; kid must be its KeyID and the grant
//     verify with its PublicKey, or the x5c leaf (standard base64 DER) must
//     equal its Certificate, be valid now and verify the grant;
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
// # Faults and statistics
//
// SetFaults injects latency, 503 and 429 (Retry-After: 1) answers into
// Toll API calls, before authentication, and takes Maskinporten or the
// exchange down (503 server_error). Stats returns a snapshot of requests
// per route, grants and exchanges per client and scope, and every
// declaration request with its outcome.
//
// Nothing secret is logged: one debug line per request, with method,
// path, route, client, status and the reason for a refusal.
package simulator
