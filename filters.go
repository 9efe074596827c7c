package assistants

import (
	"reflect"

	"github.com/assistants-go/assistants/gen"
)

// The constructors below build the values of vector store search: the
// query, the filters and the file attributes they compare. Like the message
// constructors, they call the generated From... methods, which fail only when
// encoding/json cannot marshal the value: a NaN or infinite number, which
// JSON cannot carry. Such a value is left empty, encodes as null, and the
// server refuses the request.

// Scalar is the type of a value a filter compares with: text, a number or a
// boolean.
type Scalar interface {
	~string | ~bool | ~int | ~int32 | ~int64 | ~float32 | ~float64
}

// ListScalar is the type of the values of an In or Nin filter: text or
// numbers.
type ListScalar interface {
	~string | ~int | ~int32 | ~int64 | ~float32 | ~float64
}

// SearchQuery is the query of a vector store search: one text, or several
// (the API searches for all of them). No text gives an empty list, which the
// server refuses.
//
//	res, err := client.SearchVectorStore(ctx, vsID, gen.VectorStoreSearchRequest{
//		Query:   assistants.SearchQuery("refund policy"),
//		Filters: assistants.Ptr(assistants.Eq("region", "eu")),
//	})
func SearchQuery(texts ...string) gen.VectorStoreSearchQuery {
	var q gen.VectorStoreSearchQuery
	if len(texts) == 1 {
		_ = q.FromVectorStoreSearchQueryText(texts[0])
		return q
	}
	if texts == nil {
		texts = []string{}
	}
	_ = q.FromVectorStoreSearchQueryTexts(texts)
	return q
}

// Eq is the filter "attribute key equals v".
func Eq[V Scalar](key string, v V) gen.VectorStoreSearchFilter {
	return comparison(gen.ComparisonFilterTypeEq, key, v)
}

// Ne is the filter "attribute key does not equal v".
func Ne[V Scalar](key string, v V) gen.VectorStoreSearchFilter {
	return comparison(gen.ComparisonFilterTypeNe, key, v)
}

// Gt is the filter "attribute key is greater than v".
func Gt[V Scalar](key string, v V) gen.VectorStoreSearchFilter {
	return comparison(gen.ComparisonFilterTypeGt, key, v)
}

// Gte is the filter "attribute key is greater than or equal to v".
func Gte[V Scalar](key string, v V) gen.VectorStoreSearchFilter {
	return comparison(gen.ComparisonFilterTypeGte, key, v)
}

// Lt is the filter "attribute key is less than v".
func Lt[V Scalar](key string, v V) gen.VectorStoreSearchFilter {
	return comparison(gen.ComparisonFilterTypeLt, key, v)
}

// Lte is the filter "attribute key is less than or equal to v".
func Lte[V Scalar](key string, v V) gen.VectorStoreSearchFilter {
	return comparison(gen.ComparisonFilterTypeLte, key, v)
}

// In is the filter "attribute key is one of vs".
func In[V ListScalar](key string, vs ...V) gen.VectorStoreSearchFilter {
	return listComparison(gen.ComparisonFilterTypeIn, key, vs)
}

// Nin is the filter "attribute key is none of vs".
func Nin[V ListScalar](key string, vs ...V) gen.VectorStoreSearchFilter {
	return listComparison(gen.ComparisonFilterTypeNin, key, vs)
}

// And is the filter that holds when every one of filters holds.
func And(filters ...gen.VectorStoreSearchFilter) gen.VectorStoreSearchFilter {
	return compound(gen.CompoundFilterTypeAnd, filters)
}

// Or is the filter that holds when at least one of filters holds.
func Or(filters ...gen.VectorStoreSearchFilter) gen.VectorStoreSearchFilter {
	return compound(gen.CompoundFilterTypeOr, filters)
}

func compound(op gen.CompoundFilterType, filters []gen.VectorStoreSearchFilter) gen.VectorStoreSearchFilter {
	if filters == nil {
		filters = []gen.VectorStoreSearchFilter{}
	}
	var f gen.VectorStoreSearchFilter
	_ = f.FromCompoundFilter(gen.CompoundFilter{Type: op, Filters: filters})
	return f
}

func comparison[V Scalar](op gen.ComparisonFilterType, key string, v V) gen.VectorStoreSearchFilter {
	var value gen.ComparisonFilterValue
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.String:
		_ = value.FromComparisonFilterString(rv.String())
	case reflect.Bool:
		_ = value.FromComparisonFilterBoolean(rv.Bool())
	default:
		_ = value.FromComparisonFilterNumber(number(rv))
	}
	var f gen.VectorStoreSearchFilter
	_ = f.FromComparisonFilter(gen.ComparisonFilter{Type: op, Key: key, Value: value})
	return f
}

func listComparison[V ListScalar](op gen.ComparisonFilterType, key string, vs []V) gen.VectorStoreSearchFilter {
	items := make([]gen.ComparisonFilterValueItem, len(vs))
	for i, v := range vs {
		if rv := reflect.ValueOf(v); rv.Kind() == reflect.String {
			_ = items[i].FromComparisonFilterString(rv.String())
		} else {
			_ = items[i].FromComparisonFilterNumber(number(rv))
		}
	}
	var value gen.ComparisonFilterValue
	_ = value.FromComparisonFilterList(items)
	var f gen.VectorStoreSearchFilter
	_ = f.FromComparisonFilter(gen.ComparisonFilter{Type: op, Key: key, Value: value})
	return f
}

// number is the float64 of an integer or floating-point value.
func number(rv reflect.Value) float64 {
	if rv.CanInt() {
		return float64(rv.Int())
	}
	return rv.Float()
}

// AttributeString is a text attribute value of a vector store file (at most
// 512 characters), for gen.VectorStoreFileAttributes.
func AttributeString(s string) gen.VectorStoreFileAttributeValue {
	var a gen.VectorStoreFileAttributeValue
	_ = a.FromVectorStoreFileAttributeString(s)
	return a
}

// AttributeNumber is a numeric attribute value of a vector store file.
func AttributeNumber(f float64) gen.VectorStoreFileAttributeValue {
	var a gen.VectorStoreFileAttributeValue
	_ = a.FromVectorStoreFileAttributeNumber(f)
	return a
}

// AttributeBool is a boolean attribute value of a vector store file.
func AttributeBool(b bool) gen.VectorStoreFileAttributeValue {
	var a gen.VectorStoreFileAttributeValue
	_ = a.FromVectorStoreFileAttributeBoolean(b)
	return a
}
