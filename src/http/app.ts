import { type IRequest, Router } from "itty-router";
import { AppError } from "../domain/errors";
import type { Family } from "./auth";
import { cloudFaultResponse } from "./cloudfault";
import { problemResponse } from "./problem";
import { type RouteSpec, runRoute } from "./route";

type Handler = (request: Request, env: Env, ctx: ExecutionContext) => Promise<Response>;

const RENDER: Record<Family, (error: AppError, request: Request) => Response> = {
  partner: (error, request) => problemResponse(error, new URL(request.url).pathname),
  quota: (error) => cloudFaultResponse(error),
  // The vendor spec defines no error body, so the vendor API answers problem+json like /v1.
  vendor: (error, request) => problemResponse(error, new URL(request.url).pathname),
};

export function familyOf(pathname: string): Family {
  if (pathname === "/account/v1.0" || pathname.startsWith("/account/")) return "quota";
  if (pathname === "/api" || pathname.startsWith("/api/")) return "vendor";
  return "partner";
}

/** `/v1/customers/{id}` → `/v1/customers/:id`, the itty-router pattern. */
const ittyPath = (path: string) => path.replace(/\{(\w+)\}/g, ":$1");

/**
 * Builds the fetch handler over a set of routes: dispatches with itty-router, answers 404/405 for
 * what no route matches, and renders every error in the dialect of the family the path belongs to.
 * Anything that is not an AppError is a bug: it is logged and answered as a bare 500.
 */
export function createApp(routes: readonly RouteSpec[]): Handler {
  // The URL parsed here is handed on to the route, so a request's query is not parsed again.
  const router = Router<IRequest, [Env, ExecutionContext, URL]>();
  for (const route of routes) {
    const family = familyOf(route.path);
    router[route.method.toLowerCase() as "get"](
      ittyPath(route.path),
      (req: IRequest, env: Env, ctx: ExecutionContext, url: URL) =>
        runRoute(route, family, req.params, req as unknown as Request, url, env, ctx),
    );
  }
  const patterns = router.routes.map(([, regex]) => regex);

  return async (request, env, ctx) => {
    const url = new URL(request.url);
    const family = familyOf(url.pathname);
    try {
      const response: Response | undefined = await router.fetch(
        request as unknown as IRequest,
        env,
        ctx,
        url,
      );
      if (response) return response;
      const known = patterns.some((regex) => regex.test(url.pathname));
      if (known)
        throw new AppError("method_not_allowed", `${request.method} is not allowed on ${url.pathname}`);
      throw new AppError("not_found", `no route for ${request.method} ${url.pathname}`);
    } catch (error) {
      if (error instanceof AppError) return RENDER[family](error, request);
      console.error("unhandled error", request.method, url.pathname, error);
      return RENDER[family](new AppError("internal", "internal error"), request);
    }
  };
}
