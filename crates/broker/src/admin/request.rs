//! The administration operations as serialisable requests, for front-ends
//! that talk over a wire (the control socket behind `warrenctl`):
//! `{"op": "add_user", "name": "lqz", "password": "123"}` in,
//! `{"ok": true, "result": …}` or `{"ok": false, "error": {"kind": …}}` out.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::users::Credentials;
use super::{Admin, AdminError, AdminResult};
use crate::alarms::{self, Watermark};
use crate::definitions::VhostDef;

fn root() -> String {
    "/".into()
}

fn all() -> String {
    "all".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    AddUser {
        name: String,
        #[serde(default)]
        password: Option<String>,
    },
    DeleteUser {
        name: String,
    },
    ChangePassword {
        name: String,
        password: String,
    },
    ClearPassword {
        name: String,
    },
    AuthenticateUser {
        name: String,
        password: String,
    },
    SetUserTags {
        name: String,
        #[serde(default)]
        tags: Vec<String>,
    },
    ListUsers,
    /// A policy, or with `operator` an operator policy.
    SetPolicy {
        #[serde(default = "root")]
        vhost: String,
        name: String,
        pattern: String,
        definition: Value,
        #[serde(default)]
        priority: i64,
        #[serde(default = "all")]
        apply_to: String,
        #[serde(default)]
        operator: bool,
    },
    ClearPolicy {
        #[serde(default = "root")]
        vhost: String,
        name: String,
        #[serde(default)]
        operator: bool,
    },
    SetVhostLimits {
        #[serde(default = "root")]
        vhost: String,
        limits: Value,
    },
    ClearVhostLimits {
        #[serde(default = "root")]
        vhost: String,
        #[serde(default = "all")]
        which: String,
    },
    /// One vhost's limits, or (`global`) every vhost's.
    ListVhostLimits {
        #[serde(default = "root")]
        vhost: String,
        #[serde(default)]
        global: bool,
    },
    SetUserLimits {
        user: String,
        limits: Value,
    },
    ClearUserLimits {
        user: String,
        which: String,
    },
    ListUserLimits {
        #[serde(default)]
        user: Option<String>,
    },
    ListPolicies {
        #[serde(default = "root")]
        vhost: String,
        #[serde(default)]
        operator: bool,
    },
    AddVhost {
        name: String,
        #[serde(default)]
        description: String,
        #[serde(default)]
        tags: Vec<String>,
        #[serde(default)]
        default_queue_type: Option<String>,
    },
    DeleteVhost {
        name: String,
    },
    ListVhosts,
    SetPermissions {
        #[serde(default = "root")]
        vhost: String,
        user: String,
        configure: String,
        write: String,
        read: String,
    },
    ClearPermissions {
        #[serde(default = "root")]
        vhost: String,
        user: String,
    },
    ListPermissions {
        #[serde(default = "root")]
        vhost: String,
    },
    ListUserPermissions {
        user: String,
    },
    SetTopicPermissions {
        #[serde(default = "root")]
        vhost: String,
        user: String,
        exchange: String,
        write: String,
        read: String,
    },
    ClearTopicPermissions {
        #[serde(default = "root")]
        vhost: String,
        user: String,
        #[serde(default)]
        exchange: Option<String>,
    },
    ListTopicPermissions {
        #[serde(default = "root")]
        vhost: String,
    },
    ListUserTopicPermissions {
        user: String,
    },
    ListQueues {
        #[serde(default = "root")]
        vhost: String,
    },
    ListExchanges {
        #[serde(default = "root")]
        vhost: String,
    },
    ListBindings {
        #[serde(default = "root")]
        vhost: String,
    },
    ListConnections,
    ListChannels,
    ListConsumers {
        #[serde(default = "root")]
        vhost: String,
    },
    PurgeQueue {
        #[serde(default = "root")]
        vhost: String,
        name: String,
    },
    DeleteQueue {
        #[serde(default = "root")]
        vhost: String,
        name: String,
        #[serde(default)]
        if_unused: bool,
        #[serde(default)]
        if_empty: bool,
    },
    CloseConnection {
        name: String,
        reason: String,
    },
    CloseAllConnections {
        #[serde(default)]
        vhost: Option<String>,
        #[serde(default)]
        user: Option<String>,
        reason: String,
    },
    ExportDefinitions {
        #[serde(default)]
        vhost: Option<String>,
    },
    ImportDefinitions {
        definitions: Value,
        #[serde(default)]
        vhost: Option<String>,
        /// Refuse the whole file if anything would be left out.
        #[serde(default)]
        strict: bool,
    },
    Status,
    /// rabbitmqctl's arguments: `0.4` (of RAM) or `absolute 512MB`.
    SetVmMemoryHighWatermark {
        args: Vec<String>,
    },
    /// rabbitmqctl's arguments: `50MB` or `mem_relative 1.5`.
    SetDiskFreeLimit {
        args: Vec<String>,
    },
    SetParameter {
        #[serde(default = "root")]
        vhost: String,
        component: String,
        name: String,
        value: Value,
    },
    ClearParameter {
        #[serde(default = "root")]
        vhost: String,
        component: String,
        name: String,
    },
    ListParameters {
        #[serde(default = "root")]
        vhost: String,
    },
    SetGlobalParameter {
        name: String,
        value: Value,
    },
    ClearGlobalParameter {
        name: String,
    },
    ListGlobalParameters,
    SetClusterName {
        name: String,
    },
    /// The cluster name: the `cluster_name` global parameter, else the
    /// node name (RabbitMQ's default).
    ClusterName,
}

/// What a request returns.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Response {
    Done,
    Count { count: u64 },
    Rows(Vec<Value>),
    Value(Value),
}

fn rows<T: Serialize>(items: Vec<T>) -> Response {
    Response::Rows(
        items
            .into_iter()
            .filter_map(|i| serde_json::to_value(i).ok())
            .collect(),
    )
}

impl Admin {
    /// Runs one request.
    pub fn handle(&self, req: Request) -> AdminResult<Response> {
        use Request::*;
        Ok(match req {
            AddUser { name, password } => {
                let c = password.map_or(Credentials::None, Credentials::Password);
                self.add_user(&name, c)?;
                Response::Done
            }
            DeleteUser { name } => done(self.delete_user(&name))?,
            ChangePassword { name, password } => done(self.change_password(&name, &password))?,
            ClearPassword { name } => done(self.clear_password(&name))?,
            AuthenticateUser { name, password } => Response::Value(
                serde_json::to_value(self.authenticate_user(&name, &password)?).unwrap_or_default(),
            ),
            SetUserTags { name, tags } => done(self.set_user_tags(&name, tags))?,
            ListUsers => rows(self.users()),
            SetPolicy {
                vhost,
                name,
                pattern,
                definition,
                priority,
                apply_to,
                operator,
            } => done(self.set_policy(crate::definitions::PolicyDef {
                vhost,
                name,
                pattern,
                apply_to,
                definition,
                priority,
                operator,
            }))?,
            ClearPolicy {
                vhost,
                name,
                operator,
            } => {
                let cleared = if operator {
                    self.clear_operator_policy(&vhost, &name)?
                } else {
                    self.clear_policy(&vhost, &name)?
                };
                if !cleared {
                    return Err(AdminError::NoSuchPolicy { vhost, name });
                }
                Response::Done
            }
            SetVhostLimits { vhost, limits } => done(self.set_vhost_limits(&vhost, &limits))?,
            ClearVhostLimits { vhost, which } => done(self.clear_vhost_limits(&vhost, &which))?,
            ListVhostLimits { vhost, global } => {
                let rows = self.vhost_limits((!global).then_some(vhost.as_str()))?;
                Response::Value(serde_json::json!(rows
                    .into_iter()
                    .map(|(v, l)| serde_json::json!({"vhost": v, "limits": l}))
                    .collect::<Vec<_>>()))
            }
            SetUserLimits { user, limits } => done(self.set_user_limits(&user, &limits))?,
            ClearUserLimits { user, which } => done(self.clear_user_limits(&user, &which))?,
            ListUserLimits { user } => {
                let rows = self.user_limits(user.as_deref())?;
                Response::Value(serde_json::json!(rows
                    .into_iter()
                    .map(|(u, l)| serde_json::json!({"user": u, "limits": l}))
                    .collect::<Vec<_>>()))
            }
            ListPolicies { vhost, operator } => {
                self.vhost(&vhost)?;
                rows(if operator {
                    self.operator_policies(Some(&vhost))
                } else {
                    self.policies(Some(&vhost))
                })
            }
            AddVhost {
                name,
                description,
                tags,
                default_queue_type,
            } => {
                self.add_vhost(VhostDef {
                    name,
                    description,
                    tags,
                    default_queue_type,
                })?;
                Response::Done
            }
            DeleteVhost { name } => done(self.delete_vhost(&name))?,
            ListVhosts => rows(self.vhosts()),
            SetPermissions {
                vhost,
                user,
                configure,
                write,
                read,
            } => done(self.set_permissions(&vhost, &user, &configure, &write, &read))?,
            ClearPermissions { vhost, user } => done(self.clear_permissions(&vhost, &user))?,
            ListPermissions { vhost } => rows(self.permissions(Some(&vhost), None)?),
            ListUserPermissions { user } => rows(self.permissions(None, Some(&user))?),
            SetTopicPermissions {
                vhost,
                user,
                exchange,
                write,
                read,
            } => done(self.set_topic_permissions(&vhost, &user, &exchange, &write, &read))?,
            ClearTopicPermissions {
                vhost,
                user,
                exchange,
            } => done(self.clear_topic_permissions(&vhost, &user, exchange.as_deref()))?,
            ListTopicPermissions { vhost } => rows(self.topic_permissions(Some(&vhost), None)?),
            ListUserTopicPermissions { user } => rows(self.topic_permissions(None, Some(&user))?),
            ListQueues { vhost } => rows(self.queues(&vhost)),
            ListExchanges { vhost } => rows(self.exchanges(&vhost)),
            ListBindings { vhost } => rows(self.bindings(&vhost)),
            ListConnections => rows(self.connections()),
            ListChannels => rows(self.channels()),
            ListConsumers { vhost } => rows(self.consumers(&vhost)),
            PurgeQueue { vhost, name } => Response::Count {
                count: u64::from(self.purge_queue(&vhost, &name)?),
            },
            DeleteQueue {
                vhost,
                name,
                if_unused,
                if_empty,
            } => Response::Count {
                count: u64::from(self.delete_queue(&vhost, &name, if_unused, if_empty)?),
            },
            CloseConnection { name, reason } => done(self.close_connection(&name, &reason))?,
            CloseAllConnections {
                vhost,
                user,
                reason,
            } => Response::Count {
                count: self.close_all_connections(vhost.as_deref(), user.as_deref(), &reason)
                    as u64,
            },
            ExportDefinitions { vhost } => {
                Response::Value(self.export_definitions(vhost.as_deref())?)
            }
            ImportDefinitions {
                definitions,
                vhost,
                strict,
            } => Response::Value(
                serde_json::to_value(self.import_definitions(
                    &definitions,
                    vhost.as_deref(),
                    strict,
                )?)
                .unwrap_or_default(),
            ),
            Status => Response::Value(serde_json::to_value(self.status()).unwrap_or_default()),
            SetVmMemoryHighWatermark { args } => {
                let w = match args.as_slice() {
                    [kind, size] if kind == "absolute" => alarms::parse_size(size)
                        .map(Watermark::Absolute)
                        .ok_or_else(|| AdminError::invalid(format!("invalid size '{size}'")))?,
                    [f] => match f.parse::<f64>() {
                        Ok(x) if (0.0..=1.0).contains(&x) => Watermark::Relative(x),
                        _ => {
                            return Err(AdminError::invalid(format!(
                                "invalid fraction '{f}' (0.0 to 1.0)"
                            )))
                        }
                    },
                    _ => {
                        return Err(AdminError::invalid(
                            "usage: set_vm_memory_high_watermark <fraction> | absolute <size>",
                        ))
                    }
                };
                self.broker.alarms.set_watermark(w);
                Response::Done
            }
            SetDiskFreeLimit { args } => {
                let bytes = match args.as_slice() {
                    [kind, f] if kind == "mem_relative" => match f.parse::<f64>() {
                        Ok(x) if x >= 0.0 => (alarms::total_memory() as f64 * x) as u64,
                        _ => return Err(AdminError::invalid(format!("invalid fraction '{f}'"))),
                    },
                    [size] => alarms::parse_size(size)
                        .ok_or_else(|| AdminError::invalid(format!("invalid size '{size}'")))?,
                    _ => {
                        return Err(AdminError::invalid(
                            "usage: set_disk_free_limit <size> | mem_relative <fraction>",
                        ))
                    }
                };
                self.broker.alarms.set_disk_free_limit(bytes);
                Response::Count { count: bytes }
            }
            SetParameter {
                vhost,
                component,
                name,
                value,
            } => done(self.set_parameter(crate::definitions::ParameterDef {
                vhost,
                component,
                name,
                value,
            }))?,
            ClearParameter {
                vhost,
                component,
                name,
            } => done(self.clear_parameter(&vhost, &component, &name))?,
            ListParameters { vhost } => {
                self.vhost(&vhost)?;
                rows(self.parameters(Some(&vhost), None))
            }
            SetGlobalParameter { name, value } => done(
                self.set_global_parameter(crate::definitions::GlobalParameterDef { name, value }),
            )?,
            ClearGlobalParameter { name } => done(self.clear_global_parameter(&name))?,
            ListGlobalParameters => rows(self.global_parameters()),
            SetClusterName { name } => done(self.set_cluster_name(&name))?,
            ClusterName => Response::Value(Value::String(
                self.cluster_name()
                    .unwrap_or_else(crate::connections::node_name),
            )),
        })
    }
}

fn done(r: AdminResult<()>) -> AdminResult<Response> {
    r.map(|_| Response::Done)
}
