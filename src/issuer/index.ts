export { buildIssuerService, type IssuerServiceOptions } from "./app.ts";
export { type IssuerClient, IssuerClientStore, type NewClient } from "./clients.ts";
export { type CredentialRequest, credentialSchema, issueItemOf } from "./request.ts";
