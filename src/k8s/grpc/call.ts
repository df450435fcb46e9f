import type * as grpc from '@grpc/grpc-js';

/** A unary method of a grpc-js client, as the loaded .proto gives it. */
export type Unary<Req, Res> = (
  request: Req,
  options: grpc.CallOptions,
  callback: (err: grpc.ServiceError | null, response?: Res) => void,
) => grpc.ClientUnaryCall;

/** A unary call as a promise. */
export function call<Req, Res>(
  method: Unary<Req, Res>,
  client: grpc.Client,
  request: Req,
  options: grpc.CallOptions = {},
): Promise<Res> {
  return new Promise((resolve, reject) => {
    method.call(client, request, options, (err, res) => {
      if (err !== null) reject(err);
      else resolve(res as Res);
    });
  });
}
