/** The peer transport: the binary RPC frame codec and the gRPC transport (DESIGN.md §4). */
export {
  decodeFrame,
  encodeFrame,
  FrameError,
  FrameErrorKind,
  frameOverheadBytes,
  frameVersion,
  rpcEncodedBytes,
} from "./codec.js";
export type { DecodeOptions, DecodeResult, Frame, FrameHeader } from "./codec.js";
export { GrpcTransport, LinkState } from "./grpc_transport.js";
export type { PeerDownHandler, PeerStats, ReceiveHandler, TransportStats } from "./grpc_transport.js";
export { grpcTransportDefaults, TransportConfigError } from "./transport_config.js";
export type { GrpcTransportConfig, GrpcTransportOptions, TransportTls } from "./transport_config.js";
