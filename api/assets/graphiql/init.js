// Starts GraphiQL against this server: queries and mutations over HTTP, subscriptions over
// GraphQL over WebSocket (graphql-transport-ws, bundled in GraphiQL).
//
// GraphiQL passes the Headers tab into the WebSocket's connection_init payload too, so one
// Authorization header serves queries, mutations and subscriptions. A link ending in
// `#token=<jwt>` (the server prints one per demo user) fills that header in.
'use strict';

const endpoint = new URL('/graphql', window.location.origin);
const wsEndpoint = new URL(endpoint);
wsEndpoint.protocol = endpoint.protocol === 'https:' ? 'wss:' : 'ws:';

const defaultQuery = `# Welcome to Parley. Queries need a token in Headers below, e.g.
#   {"Authorization": "Bearer ey…"}
# On first start the server printed one per demo user (and a link that fills it in);
# or run: cargo run --release -q -- token --user alice
#
# Run "Live" (▶ picks the operation), then send a message from another tab or user:
subscription Live {
  messageAdded { seq body roomId author { handle displayName } room { name } }
}

query MyRooms {
  viewer {
    handle
    unreadTotal
    rooms(first: 20) { edges { node { id kind name unreadCount latestSeq lastMessage { body } } } }
  }
}

mutation Send($roomId: ID!) {
  sendMessage(input: { roomId: $roomId, body: "hello from GraphiQL", clientId: "graphiql-1" }) { id seq }
}
`;

/** The token in `#token=…`, removed from the address bar so it is not bookmarked or shared. */
function tokenFromLink() {
  const token = new URLSearchParams(window.location.hash.slice(1)).get('token');
  if (token) history.replaceState(null, '', window.location.pathname + window.location.search);
  return token;
}

const token = tokenFromLink();
const props = {
  fetcher: GraphiQL.createFetcher({ url: endpoint.toString(), subscriptionUrl: wsEndpoint.toString() }),
  defaultQuery,
  // Empty unless a link carried a token: a placeholder token would fail the schema request.
  defaultHeaders: '{}',
  shouldPersistHeaders: true,
  defaultEditorToolsVisibility: true,
};
// `headers` wins over the headers GraphiQL kept from the last visit; only a fresh link sets it.
if (token) props.headers = JSON.stringify({ Authorization: `Bearer ${token}` }, null, 2);

ReactDOM.createRoot(document.getElementById('graphiql')).render(React.createElement(GraphiQL, props));
