// The renewal phase of `npm run bench` (issue 6): 10,000 due subscriptions with auto_renew, one
// cron trigger, and how long until every one of them is renewed, with the peak memory of workerd.
// bench/run.mjs starts a fresh Miniflare for it (the stratus Worker alone, wrangler.toml's
// bindings and queue settings), seeds the catalog, then calls `benchRenewals`.
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { performance } from "node:perf_hooks";

export const RENEWALS = {
  customers: 20,
  perRequest: 500,
  resource: "cpu",
  period: "1 month",
  /** The trigger's scheduledTime, this long before the subscriptions' end (cron horizon: 5 min). */
  leadMs: 60_000,
  timeoutMs: Number(process.env.BENCH_RENEWALS_TIMEOUT ?? 360) * 1000,
  sampleMs: 250,
  pollMs: 1000,
};
const TOTAL = RENEWALS.customers * RENEWALS.perRequest;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Counts what the Workers log during the phase: the renewals queue's per-batch lines (README, "Observability"). */
export function renewalLog() {
  const counts = { batches: 0, renewed: 0, expired: 0, failed: 0, skipped: 0, retried: 0 };
  const cron = [];
  const other = [];
  let dropped = 0;
  return {
    counts,
    cron,
    other,
    get dropped() {
      return dropped;
    },
    onLog({ level, message }) {
      try {
        const parsed = JSON.parse(message);
        if (parsed?.event === "queue" && parsed.queue?.startsWith("stratus-renewals")) {
          counts.batches++;
          for (const k of ["renewed", "expired", "failed", "skipped", "retried", "monthsClosed"])
            counts[k] = (counts[k] ?? 0) + (parsed[k] ?? 0);
          return;
        }
        if (parsed?.event === "cron") {
          cron.push(parsed);
          return;
        }
        // The seeding's request lines, and other queues' batches.
        if (parsed?.event === "request" || parsed?.event === "queue") return;
      } catch {
        // Not one of the JSON lines: shown below.
      }
      // Failures and anything unexpected are echoed to stderr, the first 20 of them.
      if (other.length < 20) {
        other.push(`${level}: ${message.slice(0, 300)}`);
        console.error(`[workerd ${level}] ${message}`);
      } else dropped++;
    },
  };
}

/** The workerd processes this Node process started (Miniflare spawns workerd directly). */
function workerdPid() {
  const mine = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      // pid (comm) state ppid ... starttime is field 22.
      const close = stat.lastIndexOf(")");
      const comm = stat.slice(stat.indexOf("(") + 1, close);
      const fields = stat.slice(close + 2).split(" ");
      if (comm === "workerd" && Number(fields[1]) === process.pid) {
        mine.push({ pid: Number(entry), start: Number(fields[19]) });
      }
    } catch {
      // Gone meanwhile.
    }
  }
  return mine.sort((a, b) => b.start - a.start)[0]?.pid ?? null;
}

const statusKiB = (pid, key) => {
  const match = readFileSync(`/proc/${pid}/status`, "utf8").match(new RegExp(`^${key}:\\s+(\\d+) kB`, "m"));
  return match ? Number(match[1]) : null;
};

/** CPU seconds of each of the process's threads so far (utime + stime), by thread id. */
function threadCpu(pid) {
  const ticks = new Map();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      const comm = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
      ticks.set(tid, { comm, seconds: (Number(fields[11]) + Number(fields[12])) / CLK_TCK });
    } catch {
      // The thread ended meanwhile.
    }
  }
  return ticks;
}

const CLK_TCK = (() => {
  try {
    return Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** Where workerd's CPU went between two `threadCpu` readings: in all, and its busiest thread. */
function cpuBetween(before, after) {
  let total = 0;
  let busiest = { comm: "-", seconds: 0 };
  for (const [tid, t] of after) {
    const seconds = t.seconds - (before.get(tid)?.seconds ?? 0);
    total += seconds;
    if (seconds > busiest.seconds) busiest = { comm: t.comm, seconds };
  }
  return { total, busiest };
}

/** Samples workerd's resident memory every `RENEWALS.sampleMs` until stopped, and its CPU time. */
function memorySampler(pid) {
  let resetPeak = false;
  try {
    // "5" resets VmHWM to the current RSS: the peak read at the end is the trigger's own.
    writeFileSync(`/proc/${pid}/clear_refs`, "5");
    resetPeak = true;
  } catch {
    // Not permitted here: VmHWM is then the peak since workerd started (seeding included).
  }
  const cpuStart = threadCpu(pid);
  const startKiB = statusKiB(pid, "VmRSS");
  let maxKiB = startKiB;
  let samples = 0;
  const timer = setInterval(() => {
    try {
      const kib = statusKiB(pid, "VmRSS");
      samples++;
      if (kib !== null && kib > maxKiB) maxKiB = kib;
    } catch {
      // workerd exited: the caller notices through its own requests.
    }
  }, RENEWALS.sampleMs);
  return {
    stop() {
      clearInterval(timer);
      const endKiB = statusKiB(pid, "VmRSS");
      return {
        cpu: cpuBetween(cpuStart, threadCpu(pid)),
        startKiB,
        endKiB,
        maxKiB: Math.max(maxKiB, endKiB ?? 0),
        hwmKiB: statusKiB(pid, "VmHWM"),
        samples,
        resetPeak,
      };
    },
  };
}

/** The first noon UTC at least a week ahead: a start_time the API accepts on any day. */
function futureNoon(now) {
  const d = new Date(now + 7 * 86_400_000);
  d.setUTCHours(12, 0, 0, 0);
  return d;
}

/**
 * Seeds RENEWALS.customers × RENEWALS.perRequest subscriptions with auto_renew through the
 * purchase API (one request of 500 per customer), all starting at the same future noon for one
 * month, so they end at the same noon; each customer's quota fits them twice (the renewal holds
 * quota for its term while the current one still does). Then fires one cron trigger just before
 * that end and waits until D1 shows every renewal, or the timeout.
 */
export async function benchRenewals({
  mf,
  db,
  api,
  seed,
  inParallel,
  log,
  logs,
  deadline = Infinity,
  profiled = (_name, during) => during(),
}) {
  const seedStarted = performance.now();
  const customers = await inParallel(Array.from({ length: RENEWALS.customers }), 4, async (_, i) => {
    const c = await api("POST", "/v1/customers", {
      token: seed.partnerKey,
      body: { name: `Renewal Customer ${i}`, email: `r${i}@bench.example` },
    });
    await api("PUT", `/v1/customers/${c.id}/quotas`, {
      token: seed.operatorKey,
      body: { source: "system", resource: `stratus.${RENEWALS.resource}`, limit: 2 * RENEWALS.perRequest },
    });
    return c.id;
  });
  const start = futureNoon(Date.now());
  const ends = new Set();
  let bought = 0;
  // Four purchases at a time: creating the objects waits on storage as much as on the CPU.
  await profiled("renewals-seed", () =>
    inParallel(customers, 4, async (customer) => {
      const objects = Array.from({ length: RENEWALS.perRequest }, () => ({
        customer,
        resource: RENEWALS.resource,
        amount: 1,
        start_time: start.toISOString(),
        period: RENEWALS.period,
        auto_renew: true,
      }));
      const res = await api("POST", "/v1/subscriptions/", { token: seed.partnerKey, body: { objects } });
      for (const o of res.objects) ends.add(o.end_time);
      bought += res.objects.length;
      if (bought % 2500 === 0) log(`  bought ${bought} of ${TOTAL}`);
    }),
  );
  const seedSeconds = (performance.now() - seedStarted) / 1000;
  if (ends.size !== 1) throw new Error(`the subscriptions end at ${ends.size} different times`);
  const end = new Date([...ends][0]);
  const due = await db
    .prepare(
      "SELECT count(*) AS n FROM subscriptions WHERE end_time = ? AND ended_at IS NULL AND next_id IS NULL",
    )
    .bind(end.toISOString())
    .first("n");
  if (due !== TOTAL) throw new Error(`${due} subscriptions due at ${end.toISOString()}, not ${TOTAL}`);
  log(
    `seeded ${due} subscriptions (${start.toISOString()} to ${end.toISOString()}) in ${seedSeconds.toFixed(0)} s`,
  );

  const renewed = () =>
    db.prepare("SELECT count(*) AS n FROM subscriptions WHERE previous_id IS NOT NULL").first("n");
  const pid = workerdPid();
  if (pid === null) throw new Error("no workerd child process found");
  // Settle whatever the seeding left running before the clock starts.
  await sleep(2000);
  const sampler = memorySampler(pid);
  const worker = await mf.getWorker("stratus");
  const scheduledTime = end.getTime() - RENEWALS.leadMs;
  log(`firing one cron trigger at scheduledTime ${new Date(scheduledTime).toISOString()}`);
  const t0 = performance.now();
  let outcome;
  let handlerSeconds = 0;
  let done = 0;
  let seconds = null;
  const progress = [];
  await profiled("renewals-renew", async () => {
    outcome = await worker.scheduled({ scheduledTime: new Date(scheduledTime), cron: "*/5 * * * *" });
    handlerSeconds = (performance.now() - t0) / 1000;
    log(`  scheduled() returned ${outcome.outcome} after ${handlerSeconds.toFixed(1)} s`);
    let lastLogged = t0;
    // The renewals stop at their own limit, or earlier where the whole run would pass its deadline.
    const stopAt = Math.min(t0 + RENEWALS.timeoutMs, t0 + (deadline - Date.now()));
    while (performance.now() < stopAt) {
      done = await renewed();
      const now = performance.now();
      if (done >= TOTAL) {
        seconds = (now - t0) / 1000;
        break;
      }
      if (now - lastLogged >= 15_000) {
        lastLogged = now;
        progress.push([(now - t0) / 1000, done]);
        log(`  ${done} renewed after ${((now - t0) / 1000).toFixed(0)} s`);
      }
      await sleep(RENEWALS.pollMs);
    }
  });
  const memory = sampler.stop();
  // The last consumer batch logs its tally just after its last D1 write: wait for it briefly.
  for (let i = 0; i < 10 && logs.counts.renewed + logs.counts.failed + logs.counts.skipped < done; i++) {
    await sleep(500);
  }
  // The quota the customers hold afterwards: every renewal's commission accepted leaves none pending.
  const quota = { usage: 0, pending: 0, limit: 0 };
  for (const customer of customers) {
    const { objects } = await api("GET", `/v1/customers/${customer}/quotas`, { token: seed.operatorKey });
    for (const h of objects.filter((o) => o.resource === `stratus.${RENEWALS.resource}`)) {
      quota.usage += h.usage;
      quota.pending += h.pending;
      quota.limit += h.limit;
    }
  }
  const renewalErrors = await db
    .prepare("SELECT count(*) AS n FROM subscriptions WHERE body->>'renewalError' IS NOT NULL")
    .first("n");
  return {
    total: TOTAL,
    customers: RENEWALS.customers,
    seedSeconds,
    end: end.toISOString(),
    scheduledTime: new Date(scheduledTime).toISOString(),
    outcome: outcome.outcome,
    handlerSeconds,
    enqueued: logs.cron[0]?.renewalsEnqueued ?? null,
    done,
    seconds,
    timedOut: seconds === null,
    elapsed: (performance.now() - t0) / 1000,
    progress,
    counts: { ...logs.counts },
    otherLogs: logs.other.length + logs.dropped,
    renewalErrors,
    quota,
    memory,
    nodeMaxRssKiB: process.resourceUsage().maxRSS,
  };
}

const mib = (kib) => (kib === null || kib === undefined ? "-" : `${(kib / 1024).toFixed(0)} MiB`);

/** The report's renewal section. */
/**
 * The renewal phase's lines; `purchaseRps`: the purchase row's req/s in the same run, if it ran
 * (issue 17: renewals at least as fast as purchases, 10,000 in 45 s or less).
 */
export function renewalReport(r, consumer, purchaseRps = null) {
  if (r.error) return [`Renewals: FAILED: ${r.error}`];
  const lines = [];
  const c = r.counts;
  const rate = r.seconds ? r.done / r.seconds : r.done / r.elapsed;
  lines.push(
    `Renewals: ${r.total.toLocaleString("en")} subscriptions (auto_renew, ${RENEWALS.resource}, ${RENEWALS.period}, ${r.customers} customers) bought through POST /v1/subscriptions/ (${RENEWALS.perRequest} a request) in ${r.seedSeconds.toFixed(0)} s, all ending ${r.end}; one cron trigger (scheduled(), scheduledTime ${r.scheduledTime}) on a fresh workerd; renewals queue consumer: max_batch_size ${consumer?.maxBatchSize ?? "?"}, max_batch_timeout ${consumer?.maxBatchTimeout ?? "?"} s, max_retries ${consumer?.maxRetries ?? "?"}.`,
  );
  lines.push("");
  lines.push(
    "| due | renewed | seconds to renew all | renewals/s | scheduled() handler s | peak workerd RSS (sampled / VmHWM) | workerd RSS before → after | Node peak RSS | consumer batches | retried | failed / expired / skipped | renewal errors |",
  );
  lines.push("|---:|---:|---:|---:|---:|---|---|---:|---:|---:|---|---:|");
  lines.push(
    `| ${r.total} | ${r.done} | ${r.timedOut ? `timed out after ${r.elapsed.toFixed(0)}` : r.seconds.toFixed(1)} | ${rate.toFixed(1)} | ${r.handlerSeconds.toFixed(1)} | ${mib(r.memory.maxKiB)} / ${mib(r.memory.hwmKiB)}${r.memory.resetPeak ? "" : " (since start)"} | ${mib(r.memory.startKiB)} → ${mib(r.memory.endKiB)} | ${mib(r.nodeMaxRssKiB)} | ${c.batches} | ${c.retried} | ${c.failed} / ${c.expired} / ${c.skipped} | ${r.renewalErrors} |`,
  );
  lines.push("");
  const wall = r.seconds ?? r.elapsed;
  lines.push(
    `Enqueued by the trigger: ${r.enqueued ?? "?"}. The customers' \`stratus.${RENEWALS.resource}\` quota afterwards: usage ${r.quota.usage}, pending ${r.quota.pending}, limit ${r.quota.limit} (pending 0: every renewal's commission was accepted). Other Worker log lines: ${r.otherLogs}. workerd RSS sampled every ${RENEWALS.sampleMs} ms (${r.memory.samples} samples); VmHWM ${r.memory.resetPeak ? "reset just before the trigger" : "since workerd started"}. workerd CPU from the trigger to the last renewal: ${r.memory.cpu.total.toFixed(0)} s in ${wall.toFixed(0)} s (${((100 * r.memory.cpu.total) / wall).toFixed(0)}% of one core), its busiest thread (${r.memory.cpu.busiest.comm}) ${r.memory.cpu.busiest.seconds.toFixed(0)} s (${((100 * r.memory.cpu.busiest.seconds) / wall).toFixed(0)}%).`,
  );
  if (r.progress.length > 0) {
    lines.push(`Progress: ${r.progress.map(([s, n]) => `${n} at ${s.toFixed(0)} s`).join(", ")}.`);
  }
  const fast =
    purchaseRps === null
      ? "the purchase row did not run"
      : `${rate >= purchaseRps ? "met" : "MISSED"} (${purchaseRps.toFixed(1)} purchase req/s)`;
  const quick = r.timedOut
    ? "MISSED (timed out)"
    : `${r.seconds <= 45 ? "met" : "MISSED"} (${r.seconds.toFixed(1)} s)`;
  lines.push(
    `Goals (issue 17): renewals/s ≥ the purchase row's req/s: ${fast}; all renewed in ≤ 45 s: ${quick}.`,
  );
  return lines;
}
