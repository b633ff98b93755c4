import type { IKeyManager, TAgent } from "@veramo/core";
import {
  AbstractSigner,
  type Provider,
  resolveAddress,
  Transaction,
  type TransactionLike,
  type TransactionRequest,
} from "ethers";

/**
 * An ethers signer whose private key stays in the Veramo key manager (encrypted at rest):
 * transactions are signed with `keyManagerSignEthTX`. Messages and typed data are not
 * signed through it.
 */
export class VeramoSigner extends AbstractSigner {
  readonly #agent: TAgent<IKeyManager>;
  /** The key manager's id of the key that signs (`kid`). */
  readonly kid: string;
  readonly address: string;

  constructor(agent: TAgent<IKeyManager>, kid: string, address: string, provider: Provider | null) {
    super(provider);
    this.#agent = agent;
    this.kid = kid;
    this.address = address;
  }

  override async getAddress(): Promise<string> {
    return this.address;
  }

  override connect(provider: Provider | null): VeramoSigner {
    return new VeramoSigner(this.#agent, this.kid, this.address, provider);
  }

  override async signTransaction(request: TransactionRequest): Promise<string> {
    // ethers' own sendTransaction passes a Transaction (fields behind getters); callers may pass a request.
    let tx: Transaction;
    if (request instanceof Transaction) {
      tx = request;
    } else {
      const { from: _from, to: target, ...rest } = request;
      const to = target == null ? null : await resolveAddress(target, this.provider);
      tx = Transaction.from({ ...rest, to } as TransactionLike<string>);
    }
    // Key-manager takes a plain object (ethers' Transaction keeps its fields private).
    const transaction = {
      type: tx.type,
      to: tx.to,
      nonce: tx.nonce,
      gasLimit: tx.gasLimit,
      gasPrice: tx.gasPrice,
      maxFeePerGas: tx.maxFeePerGas,
      maxPriorityFeePerGas: tx.maxPriorityFeePerGas,
      data: tx.data,
      value: tx.value,
      chainId: tx.chainId,
      accessList: tx.accessList,
    };
    return this.#agent.keyManagerSignEthTX({ kid: this.kid, transaction });
  }

  override signMessage(): Promise<string> {
    return Promise.reject(new Error("VeramoSigner signs transactions only"));
  }

  override signTypedData(): Promise<string> {
    return Promise.reject(new Error("VeramoSigner signs transactions only"));
  }
}
