package assistants

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// WithAzure switches to Azure OpenAI mode (default: OpenAI mode): the base
// URL becomes endpoint + "/openai" (e.g. https://myres.openai.azure.com/openai),
// every request carries ?api-version=apiVersion, and the key is sent as the
// api-key header. Assistants paths are not rewritten with a deployment name.
func WithAzure(endpoint, apiVersion string) Option {
	return func(o *Options) {
		o.AzureEndpoint = endpoint
		o.AzureAPIVersion = apiVersion
	}
}

// WithAzureADToken sets Options.AzureADToken: in Azure mode each attempt
// calls token and sends "Authorization: Bearer <token>" instead of api-key
// (default nil: use the api-key). Without WithAzure, New fails.
func WithAzureADToken(token func(ctx context.Context) (string, error)) Option {
	return func(o *Options) { o.AzureADToken = token }
}

// resolveAzure is Options.resolve for Azure mode: the base URL is
// AzureEndpoint + "/openai" and the key defaults to $AZURE_OPENAI_API_KEY.
func (o *Options) resolveAzure(getenv func(string) string) (*url.URL, error) {
	if o.BaseURL != "" {
		return nil, errors.New("assistants: WithBaseURL and WithAzure cannot be combined")
	}
	if o.AzureAPIVersion == "" {
		return nil, errors.New("assistants: Azure mode needs an api-version")
	}
	ep, err := parseBaseURL(o.AzureEndpoint)
	if err != nil {
		return nil, fmt.Errorf("assistants: Azure endpoint: %w", err)
	}
	if !strings.HasSuffix(ep.Path, "/openai") {
		ep.Path += "/openai"
		ep.RawPath = ""
	}
	o.BaseURL = ep.String()
	if o.APIKey == "" && o.AzureADToken == nil {
		o.APIKey = getenv("AZURE_OPENAI_API_KEY")
	}
	return ep, nil
}
