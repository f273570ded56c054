// How a frontend talks to Parley: queries and mutations are POSTed to /graphql with the token
// in `Authorization`; subscriptions run over one WebSocket (graphql-ws, protocol
// graphql-transport-ws) that carries the same header in `connection_init`.

/** A GraphQL error the server answered with; `code` is its `extensions.code`. */
export class ApiError extends Error {
  constructor(errors) {
    super(errors.map((e) => e.message).join('; '));
    this.code = errors[0]?.extensions?.code ?? 'UNKNOWN';
  }
}

/** The server did not answer (offline, restarting, a proxy's 502): worth retrying. */
export class NetworkError extends Error {}

export class Parley {
  /**
   * @param {string} token a JWT
   * @param {{onConnection: (state: 'live' | 'reconnecting', again: boolean) => void}} hooks
   *   `again` is true for every connection after the first: the moment to catch up.
   */
  constructor(token, hooks) {
    this.token = token;
    const url = new URL('/graphql', window.location.origin);
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    let connectedBefore = false;
    this.socket = graphqlWs.createClient({
      url: url.toString(),
      connectionParams: { Authorization: `Bearer ${token}` },
      // Keep trying for as long as the page is open; graphql-ws backs off between attempts.
      retryAttempts: Infinity,
      shouldRetry: () => true,
      keepAlive: 10_000,
      on: {
        connected: () => {
          hooks.onConnection('live', connectedBefore);
          connectedBefore = true;
        },
        closed: () => hooks.onConnection('reconnecting', connectedBefore),
      },
    });
  }

  /** Runs a query or mutation and returns its `data`; throws ApiError or NetworkError. */
  async request(query, variables = {}) {
    let response;
    try {
      response = await fetch('/graphql', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${this.token}` },
        body: JSON.stringify({ query, variables }),
      });
    } catch (error) {
      throw new NetworkError(error.message);
    }
    const result = await response.json().catch(() => null);
    if (!result) throw new NetworkError(`HTTP ${response.status}`);
    if (result.errors?.length) throw new ApiError(result.errors);
    return result.data;
  }

  /** Calls `onData` with each event's `data`; returns the function that ends the subscription. */
  subscribe(query, variables, onData) {
    return this.socket.subscribe(
      { query, variables },
      {
        next: (result) => result.data && onData(result.data),
        error: (error) => console.error('subscription failed', error),
        complete: () => {},
      },
    );
  }

  close() {
    this.socket.dispose();
  }
}
