import { type Order, orderWrites } from "../db/orders";
import { drawOf } from "../domain/consumption";
import { failedAt } from "../domain/endings";
import { refused } from "../domain/errors";
import { isRunning, runInstant, splitAt, start, stop } from "../domain/metering";
import { amountChangeRefusal, deploymentRefusal, runRefusal, withAutoRenew } from "../domain/refusals";
import {
  following,
  type RenewalIds,
  type RenewalPlan,
  renewalStep,
  type SubscriptionRecord,
  startDeployed,
} from "../domain/subscriptions";
import { closeMonthAt } from "../domain/usage";
import { type DeploymentPatch, reportedStatus, undeployedWithChain } from "../domain/webhooks";
import { appliedWith, givenUp, superseded, type WorkRef, workGivenUp } from "../domain/work-refs";
import { placeAbandoned, placeGivenBack, undeployedBefore } from "./subscription-chain";
import { SubscriptionMachine } from "./subscription-machine";
import { type Created, missing, type Outcome } from "./subscription-outcome";
import type { Landed } from "./subscription-store";

/**
 * One subscription's state machine. Every change runs one at a time (`exclusive`), including the
 * quota commission it needs, so concurrent changes apply in some order and quota always matches
 * the amount. The record is committed first; the D1 projection is pushed after, and the shard's
 * alarm retries the push until it lands (`SubscriptionStore`).
 */
export class Subscription extends SubscriptionMachine {
  /**
   * Creates the subscription; creating it again returns what exists, so a retried purchase is
   * harmless. A term of a chain takes the auto_renew its predecessor has once it exists: a change
   * of the chain's flag while it was bought reached the predecessor only (`setAutoRenew` in app/extend.ts).
   * `order`, the purchase's one order, is written in the batch of the new subscription's projection
   * (one D1 write for both); `ordered` says it landed there (`bookmark`: that batch's), else the
   * caller writes it.
   */
  async create(record: SubscriptionRecord, order?: Order): Promise<Created> {
    let rider = null as { landed: Landed | null } | null;
    const created = await this.exclusive(async () => {
      const existing = this.store.load();
      if (existing) return existing;
      // Its purchase was undone first: it is created ended, never live, and its order stays unwritten.
      const givenUp = this.store.givenUpAt();
      if (givenUp !== null) return this.commit(failedAt(record, givenUp));
      const previous = record.previousId === null ? null : await this.lookup(record.previousId);
      // One commit: a change of the predecessor's flag or deployment after this read is carried
      // here by that change (`setAutoRenew`, `reportDeployment` walk the chain), queued behind this one.
      const committed = this.commit(previous ? following(record, previous) : record);
      if (order) rider = this.store.ride(committed.version, (env) => orderWrites(env, order));
      return committed;
    });
    const landed = rider?.landed ?? null;
    return { record: created, ordered: landed !== null, bookmark: landed?.bookmark ?? null };
  }

  /**
   * Sets auto_renew, or toggles it. `expectedVersion`, here and below: see `change`. Turned off, a
   * renewal planned and not created yet is given up, as a cancel gives it up: the partner is
   * answered that nothing renews, so nothing may be bought after that answer.
   *
   * `toggle`, a bare toggle's reference: on its chain's last term (nothing after it but a place
   * reserved for a term not created yet, which takes this term's flag once it is), whose flag is
   * the chain's, it flips the flag as it stands now, once, so two toggles sent at once net out
   * where a value fixed at acceptance would have both set the same. Elsewhere it sets `value`, the
   * chain's flag flipped when it was accepted. Run again (a keyed retry, a redelivered operation)
   * it changes nothing, and only that is a toggle "already in effect" under If-Match: another
   * toggle in between answers 412.
   */
  async setAutoRenew(
    value: boolean | undefined,
    expectedVersion?: number,
    work: WorkRef = {},
    toggle?: string,
  ): Promise<Outcome<SubscriptionRecord>> {
    const toggled = (r: SubscriptionRecord) => toggle !== undefined && r.toggledBy?.includes(toggle) === true;
    return this.change(
      async (r) => {
        if (givenUp(r.givenUpBy, work)) throw workGivenUp();
        if (toggled(r)) return r;
        const flipped = value === undefined || (toggle !== undefined && (await this.endsChain(r)));
        const set = withAutoRenew(r, flipped ? !r.autoRenew : value);
        const next =
          toggle === undefined ? set : { ...set, toggledBy: appliedWith(r.toggledBy, { ref: toggle }) };
        return r.autoRenew && !next.autoRenew ? this.withRenewalGivenUp(next, new Date()) : next;
      },
      { version: expectedVersion, done: (r) => (toggle === undefined ? r.autoRenew === value : toggled(r)) },
    );
  }

  /**
   * Changes the quantity: up holds the difference on the customer's quota, down releases it.
   * `work`, the resize asking, is applied once, and not after a resize accepted later (`superseded`).
   * An update's auto_renew (`flag`) is set in the same commit: the update applies whole or not at all.
   */
  async changeAmount(
    amount: number,
    now: Date,
    expectedVersion?: number,
    work: WorkRef = {},
    flag?: { autoRenew: boolean; work: WorkRef },
  ): Promise<Outcome<SubscriptionRecord>> {
    const applied = (r: SubscriptionRecord) =>
      work.ref !== undefined && r.resizedBy?.includes(work.ref) === true;
    return this.change(
      async (r) => {
        if (givenUp(r.givenUpBy, work) || (flag && givenUp(r.givenUpBy, flag.work))) throw workGivenUp();
        // Applied already (a retry, a redelivery): its flag was set with it.
        if (applied(r)) return r;
        const f = flag ? withAutoRenew(r, flag.autoRenew) : r;
        // Overtaken by a later resize, its flag still applies: noted as applied with it.
        if (superseded(r.resizedBy, work))
          return f === r ? r : { ...f, resizedBy: appliedWith(r.resizedBy, work) };
        const refusal = amountChangeRefusal(r, amount);
        if (refusal) throw refused(refusal);
        const difference = amount - r.amount;
        const resizedBy = appliedWith(r.resizedBy, work);
        if (difference === 0) return resizedBy === r.resizedBy ? f : { ...f, resizedBy };
        const runs = isRunning(r.runs) ? splitAt(r.runs, runInstant(r.runs, now), amount) : r.runs;
        const reference = `subscription:${r.id}:v${r.version}:amount:${amount}`;
        return this.steps.move(this.env, r, difference, reference, now, { ...f, amount, runs, resizedBy });
      },
      {
        version: expectedVersion,
        done: (r) => (r.amount === amount || applied(r)) && (!flag || r.autoRenew === flag.autoRenew),
        // In effect already (answered as done), it is still the last resize accepted: noted, it
        // overtakes one accepted before it that runs later, as when it applies.
        noted: (r) =>
          applied(r) || superseded(r.resizedBy, work) || givenUp(r.givenUpBy, work)
            ? r
            : { ...r, resizedBy: appliedWith(r.resizedBy, work) },
      },
    );
  }

  /**
   * Starts or stops a cloud at `now`; `work`, the start or stop asking, is applied once, and not
   * after a start or stop accepted later (`superseded`).
   */
  async run(action: "start" | "stop", now: Date, work: WorkRef = {}): Promise<Outcome<SubscriptionRecord>> {
    return this.change((r) => {
      if (givenUp(r.givenUpBy, work)) throw workGivenUp();
      if (superseded(r.ranBy, work)) return r;
      const refusal = runRefusal(r, action, now);
      if (refusal) throw refused(refusal);
      const t = runInstant(r.runs, now);
      const runs = action === "start" ? start(r.runs, t, r.amount) : stop(r.runs, t);
      const ranBy = appliedWith(r.ranBy, work);
      return { ...r, runs, ...(ranBy ? { ranBy } : {}) };
    });
  }

  /**
   * The cron's month close: a cloud running since before `boundary` is billed up to it (its lines
   * written) and runs on. Again, or for a cloud not running then: nothing changes.
   */
  async closeMonth(boundary: Date): Promise<Outcome<SubscriptionRecord>> {
    return this.change((r) => {
      const runs = closeMonthAt(r.runs, boundary.getTime());
      return runs === r.runs ? r : { ...r, runs };
    });
  }

  /** Cancels: closes the running interval and releases the quota. Cancelling again changes nothing. */
  async cancel(
    now: Date,
    expectedVersion?: number,
    work: WorkRef = {},
  ): Promise<Outcome<SubscriptionRecord>> {
    return this.change(
      async (r) => {
        if (r.endedAt !== null) return r;
        if (givenUp(r.givenUpBy, work)) throw workGivenUp();
        // Cancelled first, the chain is never renewed (`withRenewalGivenUp`).
        return this.ended(await this.withRenewalGivenUp(r, now), "cancelled", now, {});
      },
      { version: expectedVersion, done: (r) => r.endedAt !== null },
    );
  }

  /**
   * Consumes up to `quantity` of a depletable subscription for consumption report `report`
   * (`drawOf`): what is left over for the next one, and what the report took here (null: nothing
   * to draw). At zero the subscription is depleted: it ends and its quota is released. Passed
   * over (`passOver`), another run of the report that finds its purchase since taken effect takes
   * nothing either: the first run here decides for every run.
   */
  async consume(
    quantity: number,
    now: Date,
    report: string,
    passOver = false,
  ): Promise<Outcome<{ record: SubscriptionRecord; leftover: number; took: number | null }>> {
    return this.exclusive(async () => {
      const r = this.store.load();
      if (!r) return missing();
      const draw = drawOf(r, quantity, report, now, this.host.draws.took(r, report), passOver);
      if (draw.kind === "passed over") this.host.draws.remember(this.id, report, 0);
      if (draw.kind !== "draws")
        return { ok: true, value: { record: r, leftover: draw.leftover, took: draw.took } };
      const { drained } = draw;
      const next = drained.remaining === 0 ? await this.ended(drained, "depleted", now, {}) : drained;
      // In the same turn as the commit, so stored with it.
      this.host.draws.remember(this.id, report, draw.took);
      return { ok: true, value: { record: this.commit(next), leftover: draw.leftover, took: draw.took } };
    });
  }

  /**
   * Claims the place after this subscription in its chain: the record as it stands with the place
   * reserved (whether its chain still holds its quota decides what the extension holds), or null
   * if another extension has it.
   */
  async reserveNext(nextId: string): Promise<Outcome<SubscriptionRecord | null>> {
    return this.exclusive(async () => {
      const found = this.store.load();
      if (!found) return missing();
      const r = await this.withStalePlaceFreed(found);
      if (r.nextId !== null) return { ok: true, value: r.nextId === nextId ? r : null };
      return { ok: true, value: this.commit({ ...r, nextId, nextReservedAt: new Date().toISOString() }) };
    });
  }

  /**
   * Gives the place back when the extension that claimed it could not be bought. An extension that
   * was created and then failed (`failed`) can never be bought again under its ids: a renewal
   * that had chosen them chooses new ones next time. `unbought`: the place is this term's renewal's,
   * and this attempt bought nothing (refused, or not tried: `renewOrExpire`).
   */
  async releaseNext(nextId: string, failed = false, unbought = false): Promise<void> {
    await this.exclusive(async () => {
      const r = this.store.load();
      if (!r) return;
      const holds = r.nextId === nextId;
      // Another delivery of the renewal (the next cron run's message, a redelivery) may be buying
      // it under the same ids: it found the place its own and reserves nothing. So the place goes
      // back only with the renewal given up, as a cancel gives it up (its late create makes it
      // failed, and it plans again with ids of its own). One created already is live: the place
      // stays its own, else the chain would no longer lead to a term bought and charged, and an
      // extension by hand would buy that term's time again.
      const own = unbought && holds && r.renewal?.subscription === nextId;
      if (own && !(await this.host.giveUp(nextId, new Date()))) return;
      const renewal = (failed || own) && r.renewal?.subscription === nextId ? null : r.renewal;
      if (!holds && renewal === r.renewal) return;
      // An ended term whose hold waited on that extension releases it now, if nothing else is live.
      await this.endHoldOf(this.commit({ ...(holds ? placeGivenBack(r) : r), renewal }));
    });
  }

  /**
   * Records what the vendor reports: its deployment status (along the allowed transitions), where
   * and how the customer reaches the application. The first DEPLOYED starts the term, now.
   */
  async setDeployment(patch: DeploymentPatch, carried = false): Promise<Outcome<SubscriptionRecord>> {
    return this.change(async (r) => {
      const status = reportedStatus(r, patch, carried);
      if (status === null) return r;
      // A DEPLOYED carried from an earlier term lifts nothing past a live term UNDEPLOYED since the
      // walk passed it (its vendor's own report, or the chain's again): this one is undeployed with it.
      if (carried && status === "DEPLOYED" && (await undeployedBefore(r, this.lookup))) return r;
      const refusal = deploymentRefusal(r, { ...patch, deploymentStatus: status });
      if (refusal) throw refused(refusal);
      const now = new Date();
      const started = r.deploymentStatus === "PENDING" && status === "DEPLOYED" ? startDeployed(r, now) : r;
      // A cloud its vendor undeployed stops there, not billed on for it (a start is refused: `runRefusal`).
      const halted =
        status === "UNDEPLOYED" && started.endedAt === null && isRunning(started.runs)
          ? { ...started, runs: stop(started.runs, runInstant(started.runs, now)) }
          : started;
      // A term undeployed with its chain is lifted with it; one its vendor undeployed itself is not.
      const { undeployedWithChain: was, ...rest } = halted;
      return {
        ...rest,
        deploymentStatus: status,
        syndicatedEndpoints: patch.syndicatedEndpoints ?? r.syndicatedEndpoints,
        endUserInstructions: patch.endUserInstructions ?? r.endUserInstructions,
        ...(undeployedWithChain(status, patch, carried, was === true) ? { undeployedWithChain: true } : {}),
      };
    });
  }

  /**
   * Ends a subscription whose purchase was undone. Its quota is not released here: the purchase's
   * commission is rejected instead, which gives it back. One not created yet (its request still on
   * its way, or dead) is given up: its `create` makes it failed.
   */
  async fail(now: Date): Promise<Outcome<SubscriptionRecord>> {
    return this.exclusive(async () => {
      const r = this.store.load();
      if (!r) {
        this.store.giveUp(now.toISOString());
        return missing();
      }
      return { ok: true, value: r.endedAt !== null ? r : this.commit(failedAt(r, now.toISOString())) };
    });
  }

  /**
   * A due renewal (`renewalStep`). To renew, the ids the renewal creates are chosen by the first
   * attempt and kept, so every later attempt (a second cron run, a redelivery) completes the same
   * renewal instead of buying another, and the place after this subscription is reserved for it
   * in the same commit (as `reserveNext` would): the answer's record shows it reserved.
   */
  async planRenewal(ids: RenewalIds, at: Date): Promise<RenewalPlan> {
    return this.exclusive(async () => {
      const found = this.store.load();
      if (!found) return { step: "skip" };
      // This renewal's own term created failed (the attempt was undone, which refuses nothing and
      // ends no chain) is freed here: the renewal is planned again with this attempt's ids.
      const r = await this.withStalePlaceFreed(found);
      const successor = r.nextId === null ? null : await this.lookup(r.nextId);
      const step = renewalStep(r, at, successor);
      if (step !== "renew") return step === "expire" ? { step, record: r } : { step };
      const renewal = r.renewal ?? ids;
      const record =
        r.nextId === renewal.subscription
          ? r
          : this.commit({
              ...r,
              renewal,
              nextId: renewal.subscription,
              nextReservedAt: new Date().toISOString(),
            });
      return { step, record, ids: renewal, fresh: r.renewal === null };
    });
  }

  /** Ends a subscription whose term is over and that is not renewed: its quota is released. */
  async expire(
    now: Date,
    renewalError: string | null = null,
    planned = false,
  ): Promise<Outcome<SubscriptionRecord>> {
    return this.change(async (r) => {
      if (r.endedAt !== null) return r;
      // The cron planned this expiry; what it read may have changed since. auto_renew turned on
      // (answered 200) makes the term due for renewal instead; an extension that took the place
      // after it since makes it due for nothing (the chain goes on, or, should the extension die,
      // the term is due again). Either way it is left as it is, for the next plan to decide. The
      // term after it ended (a cancelled extension or renewal: its chain was cancelled) keeps it
      // due for expiry, as `planRenewal` decided: its own renewal there is no renewal to wait for.
      if (planned) {
        const successor = r.nextId === null ? null : await this.lookup(r.nextId);
        // Its own renewal undone waits to be planned again, as if nothing followed.
        const undone = successor?.endReason === "failed" && successor.id === r.renewal?.subscription;
        if (renewalStep(r, now, undone ? null : successor) !== "expire") return r;
      }
      return this.ended(r, "expired", now, { renewalError });
    });
  }

  /** Whether nothing live follows `r`: no place after it, or one whose term is not created yet, or failed. */
  private async endsChain(r: SubscriptionRecord): Promise<boolean> {
    if (r.nextId === null) return true;
    const next = await this.lookup(r.nextId);
    return next === null || next.endReason === "failed";
  }

  /**
   * `r` with its renewal given up if it is planned and not created yet: its late create makes it
   * failed, and its purchase is undone, nothing billed. One created already is live, and keeps
   * its place.
   */
  private async withRenewalGivenUp(r: SubscriptionRecord, now: Date): Promise<SubscriptionRecord> {
    const renewal = r.renewal?.subscription;
    if (renewal === undefined || r.nextId !== renewal || !(await this.host.giveUp(renewal, now))) return r;
    return { ...r, nextId: null, nextReservedAt: null, renewal: null };
  }

  /**
   * The record with the place after it freed once abandoned (`placeAbandoned`): otherwise nothing
   * could extend or renew the chain again. A renewal created failed (its undo died before giving
   * the place back) goes with it, as that undo would have let it go: the next plans anew.
   */
  private async withStalePlaceFreed(r: SubscriptionRecord): Promise<SubscriptionRecord> {
    if (!(await placeAbandoned(this.env, r, this.lookup))) return r;
    const renewal = r.renewal?.subscription === r.nextId ? null : r.renewal;
    return this.commit({ ...placeGivenBack(r), renewal });
  }

  /**
   * Finishes a quota step left half-way, releases the hold of an ended term whose extension never
   * came, and pushes what is left to push.
   */
  async alarm(): Promise<void> {
    await this.exclusive(async () => {
      const r = this.store.load();
      if (!r?.endedAt || r.holdReleased) return;
      await this.endHoldOf(await this.withStalePlaceFreed(r));
      // Still held for an extension on its way: looked at again when its place expires (the wake
      // `ended` set for that may have been replaced since, by a push's retry or a take-over).
      const now = this.store.load();
      if (now && !now.holdReleased) await this.wakeWhenPlaceExpires(now);
    });
  }
}
