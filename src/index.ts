import { finishStalledCommissions } from "./app/commissions";
import type { Env } from "./env";
import { createApp } from "./http/app";
import { routes } from "./http/routes";

export { QuotaLedger } from "./objects/quota-ledger";
export { SubscriptionObject } from "./objects/subscription-object";

const app = createApp(routes);

export default {
  fetch: (request, env, ctx) => app(request, env, ctx),
  async scheduled(controller, env) {
    const finished = await finishStalledCommissions(env, new Date(controller.scheduledTime));
    console.log(JSON.stringify({ cron: controller.cron, stalledCommissionsFinished: finished }));
  },
} satisfies ExportedHandler<Env>;
