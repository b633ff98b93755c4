// The package's root entry (`import … from "kparty"`): the credential format and the error
// codes, which every part shares and which load no chain, agent or server. Each part has its
// own entry: kparty/gateway, kparty/agent, kparty/chain, kparty/state, kparty/issuer,
// kparty/models, kparty/devnet, kparty/credential, kparty/errors (package.json "exports").
export * from "./credential/index.ts";
export * from "./errors/index.ts";
