/**
 * A typed event sink. Producers test {@link EventSink.active} before building an event, so a bus
 * with no subscriber costs one property read per potential event and allocates nothing. When it is
 * active, producers also test the event's kind in {@link EventSink.wants}, so an event no
 * subscriber asked for is never built.
 */
export interface EventSink<E extends { readonly kind: string }> {
  /** True while at least one subscriber (or a tap, see {@link EventBus.tap}) listens. */
  readonly active: boolean;
  /**
   * Per event kind, whether some subscriber wants it (test {@link active} first: it is cheaper).
   * Producers read it with a literal key, `sink.wants["guest-abort"]`: one monomorphic load.
   */
  readonly wants: Readonly<Record<E["kind"], boolean>>;
  /** Deliver `event` to every subscriber that wants its kind, in subscription order. */
  emit(event: E): void;
}

/** Every kind of an event union, as the keys of an object (TypeScript checks it lists them all). */
export type EventKinds<E extends { readonly kind: string }> = Readonly<Record<E["kind"], true>>;

/** A subscriber and the kinds it wants (null: every kind). */
interface Subscriber<E> {
  readonly fn: (event: E) => void;
  readonly kinds: ReadonlySet<string> | null;
}

/**
 * A synchronous publish/subscribe channel for model events. Besides subscribers it can hold one
 * tap of type `T`: a typed listener that producers call directly with plain numbers instead of
 * building an event object (the page-table code's PgtableTap). Producers reach it inside their
 * `active` test, so a tap keeps the bus active.
 */
export class EventBus<E extends { readonly kind: string }, T = never> implements EventSink<E> {
  active = false;
  /** The typed listener, or null (set with {@link setTap}). */
  tap: T | null = null;
  /** Updated in place: its shape never changes, so producers' loads from it stay monomorphic. */
  readonly wants: Record<E["kind"], boolean>;
  private subscribers: Array<Subscriber<E>> = [];
  private readonly kinds: ReadonlyArray<E["kind"]>;

  /** @param kinds every kind of event the bus carries */
  constructor(kinds: EventKinds<E>) {
    this.kinds = Object.keys(kinds) as Array<E["kind"]>;
    const wants: Partial<Record<E["kind"], boolean>> = {};
    for (const k of this.kinds) wants[k] = false;
    this.wants = wants as Record<E["kind"], boolean>;
  }

  /** Add a subscriber to every kind; returns a function that removes it. */
  subscribe(fn: (event: E) => void): () => void;
  /** Add a subscriber to the events of `kinds` only; returns a function that removes it. */
  subscribe<K extends E["kind"]>(
    fn: (event: Extract<E, { kind: K }>) => void,
    kinds: readonly K[],
  ): () => void;
  subscribe(fn: (event: never) => void, kinds?: readonly string[]): () => void {
    // Sound: with `kinds`, emit only passes fn events of those kinds.
    const sub: Subscriber<E> = {
      fn: fn as (event: E) => void,
      kinds: kinds === undefined ? null : new Set(kinds),
    };
    this.subscribers = [...this.subscribers, sub];
    this.update();
    return () => {
      this.subscribers = this.subscribers.filter((s) => s !== sub);
      this.update();
    };
  }

  /** Sets the bus's tap (there is at most one); returns a function that removes it. */
  setTap(tap: T): () => void {
    if (this.tap !== null) throw new Error("EventBus: a tap is already set");
    this.tap = tap;
    this.update();
    return () => {
      if (this.tap === tap) this.tap = null;
      this.update();
    };
  }

  emit(event: E): void {
    for (const s of this.subscribers) if (s.kinds === null || s.kinds.has(event.kind)) s.fn(event);
  }

  /** Collect every event emitted while `body` runs. */
  record<R>(body: () => R): { result: R; events: E[] } {
    const events: E[] = [];
    const off = this.subscribe((e) => events.push(e));
    try {
      return { result: body(), events };
    } finally {
      off();
    }
  }

  private update(): void {
    for (const k of this.kinds) {
      this.wants[k] = this.subscribers.some((s) => s.kinds === null || s.kinds.has(k));
    }
    this.active = this.subscribers.length > 0 || this.tap !== null;
  }
}
