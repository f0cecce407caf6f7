//! The DynamoDB backend (aws-sdk-dynamodb), used in AWS.
//!
//! Single-table design: `PK` (S) and `SK` (S) keys, a keys-only global secondary index
//! `GSI1` (`GSI1PK`, `GSI1SK`) listing each tenant's entities, version attribute `ver` for
//! optimistic concurrency, and TTL attribute `expires_at`. The record's own fields are
//! mapped to attributes with serde_dynamo, so items are readable in the console. Layout and
//! costs: docs/data-model.md.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, KeySchemaElement,
    KeyType, KeysAndAttributes, Projection, ProjectionType, Put, ScalarAttributeType,
    TimeToLiveSpecification, TransactWriteItem,
};
use aws_sdk_dynamodb::Client;

use super::{
    Backend, Condition, End, IndexKey, ItemKey, Range, Record, StoreError, StoredItem, Write,
};

/// Name of the entity index.
pub const GSI1: &str = "GSI1";
/// DynamoDB's limit of items per TransactWriteItems.
const MAX_TRANSACTION_ITEMS: usize = 100;
/// DynamoDB's limit of keys per BatchGetItem.
const MAX_BATCH_GET: usize = 100;
/// Queries in flight at once in [`Backend::query_many`].
const QUERY_CONCURRENCY: usize = 64;

type Item = HashMap<String, AttributeValue>;

/// The DynamoDB backend over one table.
#[derive(Debug, Clone)]
pub struct DynamoBackend {
    client: Client,
    table: String,
}

fn backend_err(e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::Backend(Box::new(e))
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_owned())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn key_item(key: &ItemKey) -> Item {
    HashMap::from([("PK".to_owned(), s(&key.pk)), ("SK".to_owned(), s(&key.sk))])
}

/// Maps a stored item to DynamoDB attributes.
fn to_item(item: &StoredItem) -> Result<Item, StoreError> {
    let mut out: Item = serde_dynamo::to_item(&item.record).map_err(backend_err)?;
    out.insert("PK".to_owned(), s(&item.key.pk));
    out.insert("SK".to_owned(), s(&item.key.sk));
    out.insert("ver".to_owned(), n(item.version));
    if let Some(t) = item.expires_at {
        out.insert("expires_at".to_owned(), n(t));
    }
    if let Some(ix) = &item.index {
        out.insert("GSI1PK".to_owned(), s(&ix.pk));
        out.insert("GSI1SK".to_owned(), s(&ix.sk));
    }
    Ok(out)
}

fn take_s(item: &mut Item, name: &str) -> Option<String> {
    match item.remove(name) {
        Some(AttributeValue::S(v)) => Some(v),
        _ => None,
    }
}

fn take_n(item: &mut Item, name: &str) -> Option<String> {
    match item.remove(name) {
        Some(AttributeValue::N(v)) => Some(v),
        _ => None,
    }
}

/// The size DynamoDB bills an item at, by its documented rules: attribute names plus values
/// (strings by UTF-8 length, numbers at about one byte per two significant digits plus one,
/// maps and lists at 3 bytes plus their contents, booleans and nulls at 1 byte).
pub fn item_size(item: &StoredItem) -> Result<usize, StoreError> {
    Ok(to_item(item)?
        .iter()
        .map(|(k, v)| k.len() + value_size(v))
        .sum())
}

fn value_size(v: &AttributeValue) -> usize {
    match v {
        AttributeValue::S(s) => s.len(),
        AttributeValue::N(n) => {
            let digits = n.chars().filter(char::is_ascii_digit).count();
            digits.div_ceil(2) + 1
        }
        AttributeValue::B(b) => b.as_ref().len(),
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        AttributeValue::M(m) => {
            3 + m
                .iter()
                .map(|(k, v)| k.len() + value_size(v) + 1)
                .sum::<usize>()
        }
        AttributeValue::L(l) => 3 + l.iter().map(|v| value_size(v) + 1).sum::<usize>(),
        AttributeValue::Ss(ss) => ss.iter().map(String::len).sum(),
        AttributeValue::Ns(ns) => ns.iter().map(|n| n.len().div_ceil(2) + 1).sum(),
        _ => 0,
    }
}

/// Maps DynamoDB attributes back to a stored item. A record that does not parse becomes
/// [`Record::Unreadable`] (version 0 if `ver` is lost too), so the read that met it serves
/// everything else; an item without its keys is `Corrupt`.
/// An item as a DynamoDB stream record's `NewImage` carries it (DynamoDB JSON, e.g.
/// `{"PK": {"S": "..."}}`), read as the backend reads items.
pub fn from_stream_image(image: serde_json::Value) -> Result<StoredItem, StoreError> {
    let item: serde_dynamo::Item =
        serde_json::from_value(image).map_err(|e| StoreError::Corrupt {
            pk: String::new(),
            sk: String::new(),
            reason: format!("not a DynamoDB image: {e}"),
        })?;
    from_item(item.into())
}

fn from_item(mut item: Item) -> Result<StoredItem, StoreError> {
    let (Some(pk), Some(sk)) = (take_s(&mut item, "PK"), take_s(&mut item, "SK")) else {
        return Err(StoreError::Corrupt {
            pk: String::new(),
            sk: String::new(),
            reason: "item without PK or SK".to_owned(),
        });
    };
    let version = take_n(&mut item, "ver").and_then(|v| v.parse().ok());
    let expires_at = take_n(&mut item, "expires_at").and_then(|v| v.parse().ok());
    let index = match (take_s(&mut item, "GSI1PK"), take_s(&mut item, "GSI1SK")) {
        (Some(pk), Some(sk)) => Some(IndexKey { pk, sk }),
        _ => None,
    };
    let record = match (version, serde_dynamo::from_item::<_, Record>(item)) {
        (Some(_), Ok(record)) => record,
        (None, _) => Record::Unreadable("missing or bad ver".to_owned()),
        (_, Err(e)) => Record::Unreadable(e.to_string()),
    };
    Ok(StoredItem {
        key: ItemKey { pk, sk },
        record,
        version: version.unwrap_or(0),
        expires_at,
        index,
    })
}

impl DynamoBackend {
    /// A backend over `table` with a ready client.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// The table's name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// A client configured from the environment (region, credentials, and
    /// `AWS_ENDPOINT_URL_DYNAMODB` if set), as in Lambda.
    pub async fn client_from_env() -> Client {
        let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        Client::new(&config)
    }

    /// A backend on `table`, checked before use so that what is wrong is named: no region,
    /// no credentials (from the environment, as the AWS CLI finds them), an endpoint that
    /// does not answer, or a table that does not exist. `endpoint` names a
    /// DynamoDB-compatible server (static dummy credentials); `None` is AWS.
    pub async fn connect_checked(table: String, endpoint: Option<&str>) -> Result<Self, String> {
        use aws_sdk_dynamodb::config::ProvideCredentials;
        use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};
        let client = match endpoint {
            Some(url) => Self::client_for_endpoint(url, "us-east-1"),
            None => {
                let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
                if config.region().is_none() {
                    return Err(
                        "no AWS region: set AWS_REGION (or a region in ~/.aws/config)".to_owned(),
                    );
                }
                let Some(provider) = config.credentials_provider() else {
                    return Err("no AWS credentials provider is configured".to_owned());
                };
                if let Err(e) = provider.provide_credentials().await {
                    return Err(format!(
                        "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or \
                         AWS_PROFILE, or run where a role provides them ({})",
                        DisplayErrorContext(e)
                    ));
                }
                Client::new(&config)
            }
        };
        let place = endpoint.map_or_else(|| "AWS's DynamoDB endpoint".to_owned(), str::to_owned);
        match client.describe_table().table_name(&table).send().await {
            Ok(_) => Ok(Self::new(client, table)),
            Err(e) => {
                let detail = DisplayErrorContext(&e).to_string();
                Err(match e {
                    SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => {
                        format!("cannot reach DynamoDB at {place}: {detail}")
                    }
                    SdkError::ServiceError(s) if s.err().is_resource_not_found_exception() => {
                        format!("table {table} does not exist at {place}")
                    }
                    _ => format!("DynamoDB at {place} refused the request: {detail}"),
                })
            }
        }
    }

    /// A client for a DynamoDB-compatible server at `endpoint` (tests, local use), with
    /// static dummy credentials.
    pub fn client_for_endpoint(endpoint: &str, region: &str) -> Client {
        let config = aws_sdk_dynamodb::Config::builder()
            .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
            .endpoint_url(endpoint)
            .region(aws_sdk_dynamodb::config::Region::new(region.to_owned()))
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                "local", "local", None, None, "static",
            ))
            .build();
        Client::from_conf(config)
    }

    /// Creates the table with its index and TTL, as infra/template.yaml declares it. For
    /// tests and local use; in AWS the template creates it.
    pub async fn create_table(&self) -> Result<(), StoreError> {
        let attr = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(backend_err)
        };
        let key = |name: &str, kind: KeyType| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(kind)
                .build()
                .map_err(backend_err)
        };
        let gsi = GlobalSecondaryIndex::builder()
            .index_name(GSI1)
            .key_schema(key("GSI1PK", KeyType::Hash)?)
            .key_schema(key("GSI1SK", KeyType::Range)?)
            .projection(
                Projection::builder()
                    .projection_type(ProjectionType::KeysOnly)
                    .build(),
            )
            .build()
            .map_err(backend_err)?;
        self.client
            .create_table()
            .table_name(&self.table)
            .attribute_definitions(attr("PK")?)
            .attribute_definitions(attr("SK")?)
            .attribute_definitions(attr("GSI1PK")?)
            .attribute_definitions(attr("GSI1SK")?)
            .key_schema(key("PK", KeyType::Hash)?)
            .key_schema(key("SK", KeyType::Range)?)
            .global_secondary_indexes(gsi)
            .billing_mode(BillingMode::PayPerRequest)
            .send()
            .await
            .map_err(backend_err)?;
        self.client
            .update_time_to_live()
            .table_name(&self.table)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .enabled(true)
                    .attribute_name("expires_at")
                    .build()
                    .map_err(backend_err)?,
            )
            .send()
            .await
            .map_err(backend_err)?;
        Ok(())
    }

    fn condition(c: Condition) -> (Option<&'static str>, Option<(String, AttributeValue)>) {
        match c {
            Condition::None => (None, None),
            Condition::NotExists => (Some("attribute_not_exists(PK)"), None),
            Condition::Version(v) => (Some("ver = :ver"), Some((":ver".to_owned(), n(v)))),
        }
    }
}

#[async_trait]
impl Backend for DynamoBackend {
    async fn get(&self, keys: &[ItemKey]) -> Result<Vec<Option<StoredItem>>, StoreError> {
        self.get_with(keys, true).await
    }

    async fn get_eventual(&self, keys: &[ItemKey]) -> Result<Vec<Option<StoredItem>>, StoreError> {
        self.get_with(keys, false).await
    }

    async fn query(&self, pk: &str, from: &str, to: &str) -> Result<Vec<StoredItem>, StoreError> {
        self.query_with(pk, from, to, true, None, true).await
    }

    async fn query_end(&self, range: &Range, end: End) -> Result<Vec<StoredItem>, StoreError> {
        // The newest end is read eventually consistent, as the trait says.
        let (ascending, limit) = match end {
            End::First(n) => (true, n),
            End::Last(n) => (false, n),
        };
        let Range { pk, from, to } = range;
        self.query_with(pk, from, to, ascending, Some(limit), ascending)
            .await
    }

    async fn query_eventual(
        &self,
        pk: &str,
        from: &str,
        to: &str,
    ) -> Result<Vec<StoredItem>, StoreError> {
        self.query_with(pk, from, to, false, None, true).await
    }
    async fn query_many(&self, ranges: &[Range]) -> Result<Vec<Vec<StoredItem>>, StoreError> {
        use futures::stream::{self, StreamExt, TryStreamExt};
        // DynamoDB has no batched query; concurrent queries hide the round trips.
        let queries: Vec<_> = ranges
            .iter()
            .map(|r| self.query(&r.pk, &r.from, &r.to))
            .collect();
        stream::iter(queries)
            .buffered(QUERY_CONCURRENCY)
            .try_collect()
            .await
    }

    async fn list_index(&self, index_pk: &str) -> Result<Vec<ItemKey>, StoreError> {
        let query = |_| {
            self.client
                .query()
                .table_name(&self.table)
                .index_name(GSI1)
                .key_condition_expression("GSI1PK = :pk")
                .expression_attribute_values(":pk", s(index_pk))
        };
        self.query_pages(query, None, |item| {
            let mut item = item.clone();
            Ok(match (take_s(&mut item, "PK"), take_s(&mut item, "SK")) {
                (Some(pk), Some(sk)) => Some(ItemKey { pk, sk }),
                _ => None,
            })
        })
        .await
    }

    async fn write(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        match writes.len() {
            0 => Ok(()),
            // One item needs no transaction, which costs half the write units.
            1 => self.put(&writes[0]).await,
            len if len > MAX_TRANSACTION_ITEMS => Err(StoreError::Backend(
                format!("{len} writes exceed DynamoDB's {MAX_TRANSACTION_ITEMS} per transaction")
                    .into(),
            )),
            _ => self.transact(&writes).await,
        }
    }

    async fn delete(&self, key: &ItemKey) -> Result<(), StoreError> {
        // The keys-only index entry is DynamoDB's to remove with the item.
        self.client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key_item(key)))
            .send()
            .await
            .map_err(backend_err)?;
        Ok(())
    }

    fn max_writes(&self) -> usize {
        MAX_TRANSACTION_ITEMS
    }
}

impl DynamoBackend {
    /// One conditional PutItem.
    async fn put(&self, w: &Write) -> Result<(), StoreError> {
        let (expr, value) = Self::condition(w.condition);
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(&w.item)?))
            .set_condition_expression(expr.map(str::to_owned))
            .set_expression_attribute_values(value.map(|(k, v)| HashMap::from([(k, v)])))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(e))
                if matches!(e.err(), PutItemError::ConditionalCheckFailedException(_)) =>
            {
                Err(StoreError::Conflict)
            }
            Err(e) => Err(backend_err(e)),
        }
    }

    /// The writes as one TransactWriteItems: all or none.
    async fn transact(&self, writes: &[Write]) -> Result<(), StoreError> {
        let mut items = Vec::with_capacity(writes.len());
        for w in writes {
            let (expr, value) = Self::condition(w.condition);
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(to_item(&w.item)?))
                .set_condition_expression(expr.map(str::to_owned))
                .set_expression_attribute_values(value.map(|(k, v)| HashMap::from([(k, v)])))
                .build()
                .map_err(backend_err)?;
            items.push(TransactWriteItem::builder().put(put).build());
        }
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(e)) => match e.err() {
                // A failed condition or a concurrent transaction on the same items:
                // both mean "reread and retry". Other reasons (throttling,
                // validation) are backend errors.
                TransactWriteItemsError::TransactionCanceledException(c)
                    if c.cancellation_reasons().iter().all(|r| {
                        matches!(
                            r.code(),
                            None | Some("None" | "ConditionalCheckFailed" | "TransactionConflict")
                        )
                    }) =>
                {
                    Err(StoreError::Conflict)
                }
                _ => Err(backend_err(SdkError::ServiceError(e))),
            },
            Err(e) => Err(backend_err(e)),
        }
    }

    /// BatchGetItem in chunks, retrying unprocessed keys; `consistent: false` reads at half
    /// the price.
    async fn get_with(
        &self,
        keys: &[ItemKey],
        consistent: bool,
    ) -> Result<Vec<Option<StoredItem>>, StoreError> {
        let mut found: HashMap<ItemKey, StoredItem> = HashMap::new();
        for chunk in keys.chunks(MAX_BATCH_GET) {
            let mut unique: Vec<&ItemKey> = chunk.iter().collect();
            unique.sort();
            unique.dedup();
            let mut pending = Some(unique.into_iter().map(key_item).collect::<Vec<_>>());
            let mut rounds = 0;
            while let Some(request) = pending.take().filter(|r| !r.is_empty()) {
                let ka = KeysAndAttributes::builder()
                    .set_keys(Some(request))
                    .consistent_read(consistent)
                    .build()
                    .map_err(backend_err)?;
                let out = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, ka)
                    .send()
                    .await
                    .map_err(backend_err)?;
                if let Some(items) = out.responses().and_then(|r| r.get(&self.table)) {
                    for item in items {
                        let item = from_item(item.clone())?;
                        found.insert(item.key.clone(), item);
                    }
                }
                pending = out
                    .unprocessed_keys()
                    .and_then(|u| u.get(&self.table))
                    .map(|ka| ka.keys().to_vec());
                rounds += 1;
                if pending.as_ref().is_some_and(|p| !p.is_empty()) {
                    super::backoff(rounds).await;
                }
            }
        }
        Ok(keys.iter().map(|k| found.get(k).cloned()).collect())
    }

    /// One Query, paged to the end or to `limit` items, descending by sort key unless
    /// `forward`; `consistent: false` reads at half the price.
    async fn query_with(
        &self,
        pk: &str,
        from: &str,
        to: &str,
        consistent: bool,
        limit: Option<usize>,
        forward: bool,
    ) -> Result<Vec<StoredItem>, StoreError> {
        let query = |read: usize| {
            self.client
                .query()
                .table_name(&self.table)
                .key_condition_expression("PK = :pk AND SK BETWEEN :from AND :to")
                .expression_attribute_values(":pk", s(pk))
                .expression_attribute_values(":from", s(from))
                .expression_attribute_values(":to", s(to))
                .consistent_read(consistent)
                .scan_index_forward(forward)
                .set_limit(limit.map(|l| i32::try_from(l.saturating_sub(read)).unwrap_or(i32::MAX)))
        };
        self.query_pages(query, limit, |item| from_item(item.clone()).map(Some))
            .await
    }

    /// Runs a Query page after page (`query` is told how many items were kept so far) until
    /// the last page or until `limit` items are kept; `keep` reads each item, `None` to
    /// pass it over.
    async fn query_pages<T>(
        &self,
        query: impl Fn(usize) -> QueryFluentBuilder,
        limit: Option<usize>,
        keep: impl Fn(&Item) -> Result<Option<T>, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let page = query(out.len())
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(backend_err)?;
            for item in page.items() {
                if let Some(kept) = keep(item)? {
                    out.push(kept);
                }
            }
            if limit.is_some_and(|l| out.len() >= l) {
                return Ok(out);
            }
            match page.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => return Ok(out),
            }
        }
    }
}
