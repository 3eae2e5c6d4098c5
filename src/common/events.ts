/**
 * A typed event sink. Producers test {@link EventBus.active} before building an event, so a bus
 * with no subscriber costs one property read per potential event and allocates nothing.
 */
export interface EventSink<E> {
  /** True while at least one subscriber listens. */
  readonly active: boolean;
  /** Deliver `event` to every subscriber, in subscription order. */
  emit(event: E): void;
}

/** A synchronous publish/subscribe channel for model events. */
export class EventBus<E> implements EventSink<E> {
  private subscribers: Array<(event: E) => void> = [];
  active = false;

  /** Add a subscriber; returns a function that removes it. */
  subscribe(fn: (event: E) => void): () => void {
    this.subscribers = [...this.subscribers, fn];
    this.active = true;
    return () => {
      this.subscribers = this.subscribers.filter((f) => f !== fn);
      this.active = this.subscribers.length > 0;
    };
  }

  emit(event: E): void {
    for (const fn of this.subscribers) fn(event);
  }

  /** Collect every event emitted while `body` runs. */
  record<T>(body: () => T): { result: T; events: E[] } {
    const events: E[] = [];
    const off = this.subscribe((e) => events.push(e));
    try {
      return { result: body(), events };
    } finally {
      off();
    }
  }
}
