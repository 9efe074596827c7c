// Package assistants is a Go client for the OpenAI Assistants API v2. The
// API's types are generated into package gen; this package configures the
// client (auth, retries, Azure) and gives it one typed call per operation.
//
// # Creating a client
//
// New returns a ready *Client:
//
//	c, err := assistants.New(
//		assistants.WithAPIKey(key),          // default $OPENAI_API_KEY
//		assistants.WithMaxRetries(3),        // default 2
//		assistants.WithTimeout(time.Minute), // per attempt; default 10 minutes
//	)
//	thread, err := c.CreateThread(ctx, gen.CreateThreadRequest{})
//	msg, err := c.CreateMessage(ctx, thread.Id, assistants.UserMessage("Hello"))
//	run, err := c.GetRun(ctx, threadID, runID)
//
// Every call returns the decoded reply (*gen.ThreadObject, *gen.RunObject,
// ...) or an error; a non-2xx reply is an *APIError. ReplyHeader hands a
// call's reply header back (request IDs, rate limits). Optional fields take
// pointers (Ptr), and the union types of requests have constructors
// (UserMessage, TextPart, ToolChoiceFunction, ResponseFormatJSONSchema,
// SearchQuery, Eq, And, AttributeString, ...). What a message holds is read
// from plain fields: a content part's Type names the field that holds it.
//
//	for _, part := range msg.Content {
//		if part.Type == gen.MessageContentTypeText {
//			fmt.Println(part.Text.Value, len(part.Text.Annotations))
//		}
//	}
//
// The embedded *gen.ClientWithResponses keeps the generated <Op>WithResponse
// calls for code that wants the raw reply; Result decodes those. Streams,
// tool loops, iterators and file uploads are in package helpers; polling is
// in poller.
//
// The base URL defaults to https://api.openai.com/v1, or $OPENAI_BASE_URL;
// $OPENAI_ORG_ID and $OPENAI_PROJECT_ID give the OpenAI-Organization and
// OpenAI-Project headers. Options override the environment. Code that makes
// raw requests (for example to read a server-sent event stream) gets the same
// configured *http.Client and base URL from NewHTTPClient.
//
// # Headers and credentials
//
// Every request carries User-Agent: assistants-go/<Version> and
// OpenAI-Beta: assistants=v2. The headers are added by the client's
// RoundTripper to a clone of each request, never to the caller's request, and
// the credential (Authorization: Bearer <key>, or api-key for Azure) only
// when the request goes to the base URL's scheme, host and port. A redirect
// to any other host therefore never carries it; the client's CheckRedirect
// also strips Authorization and api-key headers that a caller set itself
// when a redirect leaves the original host.
//
// # Retries and timeouts
//
// Connection errors and the statuses 408, 409, 429 and 5xx are retried, by
// default twice; a reply header x-should-retry: true or false overrides the
// status. The wait is the server's retry-after-ms or Retry-After when it is
// in (0, 60s], otherwise 0.5s*2^n capped at 8s, less up to 25% jitter. The
// request's context cancels a wait at once. A request body is replayed
// through Request.GetBody; a body without GetBody is sent once, never
// retried. Each attempt carries X-Retry-Count (0, 1, ...) and every attempt
// of one POST the same Idempotency-Key. Each attempt is bounded by the
// per-attempt timeout until its body is read or closed, except that the timer
// stops when a text/event-stream reply's headers arrive.
//
// # Azure OpenAI
//
// WithAzure(endpoint, apiVersion) uses endpoint + "/openai" as the base URL,
// adds ?api-version= to every request, and sends the key as api-key (default
// $AZURE_OPENAI_API_KEY) or, with WithAzureADToken, a Microsoft Entra ID
// bearer token.
//
// # Errors
//
// A non-2xx reply becomes an *APIError (see NewAPIError), matched with
// errors.As. Its Error text and Message are redacted: anything that looks
// like an API key or bearer token is replaced by [REDACTED]. The SDK's debug
// logs (WithLogger) never contain headers.
package assistants
