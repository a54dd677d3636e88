import type { AppError, ErrorKind } from "./errors";

/** cloudFault bodies, the error format of the quota API (/account/v1.0): `{"<fault>": {message, code, data?}}`. */

const FAULTS: Record<ErrorKind, string> = {
  bad_request: "badRequest",
  unauthorized: "unauthorized",
  forbidden: "forbidden",
  not_found: "itemNotFound",
  method_not_allowed: "badRequest",
  conflict: "conflict",
  over_limit: "overLimit",
  payload_too_large: "badRequest",
  unsupported_media_type: "badMediaType",
  unprocessable: "badRequest",
  failed_dependency: "badRequest",
  internal: "internalServerError",
};

/** The fault object alone, as resolve-many embeds it in its `failed` pairs. */
export function cloudFault(
  error: AppError,
): Record<string, { message: string; code: number; data?: unknown }> {
  const status =
    error.kind === "method_not_allowed" || error.kind === "payload_too_large" ? 400 : error.status;
  const fault: { message: string; code: number; data?: unknown } = { message: error.message, code: status };
  if (error.options.data) fault.data = error.options.data;
  return { [FAULTS[error.kind]]: fault };
}

export function cloudFaultResponse(error: AppError): Response {
  const body = cloudFault(error);
  const code = Object.values(body)[0]?.code ?? error.status;
  return Response.json(body, { status: code });
}
