//! Permissions (configure/write/read per user per vhost) and topic
//! permissions (write/read on routing keys per exchange).

use super::info::{PermissionInfo, TopicPermissionInfo};
use super::{Admin, AdminError, AdminResult};
use crate::auth::{Permission, TopicPermission};
use crate::definitions::{Change, PermissionDef, TopicPermissionDef};

impl Admin {
    fn require_user(&self, user: &str) -> AdminResult<()> {
        match self.broker.auth.user(user) {
            Some(_) => Ok(()),
            None => Err(AdminError::NoSuchUser {
                name: user.to_string(),
            }),
        }
    }

    pub fn set_permissions(
        &self,
        vhost: &str,
        user: &str,
        configure: &str,
        write: &str,
        read: &str,
    ) -> AdminResult<()> {
        let perm = Permission::new(configure, write, read)
            .map_err(|message| AdminError::InvalidRegex { message })?;
        let _g = self.broker.ddl();
        self.vhost(vhost)?;
        self.require_user(user)?;
        if self
            .record(Change::SetPermissions(PermissionDef {
                vhost: vhost.to_string(),
                user: user.to_string(),
                configure: configure.to_string(),
                write: write.to_string(),
                read: read.to_string(),
            }))?
            .is_replicated()
        {
            return Ok(());
        }
        self.broker.auth.set_permission(vhost, user, perm);
        Ok(())
    }

    pub fn clear_permissions(&self, vhost: &str, user: &str) -> AdminResult<()> {
        let _g = self.broker.ddl();
        self.require_user(user)?;
        self.vhost(vhost)?;
        if self.broker.auth.permission(vhost, user).is_none() {
            return Ok(());
        }
        if self
            .record(Change::ClearPermissions {
                vhost: vhost.to_string(),
                user: user.to_string(),
            })?
            .is_replicated()
        {
            return Ok(());
        }
        self.broker.auth.clear_permission(vhost, user);
        Ok(())
    }

    /// Every permission, or one vhost's, or one user's.
    pub fn permissions(
        &self,
        vhost: Option<&str>,
        user: Option<&str>,
    ) -> AdminResult<Vec<PermissionInfo>> {
        if let Some(v) = vhost {
            self.vhost(v)?;
        }
        if let Some(u) = user {
            self.require_user(u)?;
        }
        Ok(self
            .broker
            .auth
            .all_permissions()
            .into_iter()
            .filter(|(v, u, _)| {
                vhost.is_none_or(|x| x == v.as_str()) && user.is_none_or(|x| x == u.as_str())
            })
            .map(|(vhost, user, p)| {
                let [configure, write, read] = p.patterns();
                PermissionInfo {
                    user,
                    vhost,
                    configure,
                    write,
                    read,
                }
            })
            .collect())
    }

    pub fn set_topic_permissions(
        &self,
        vhost: &str,
        user: &str,
        exchange: &str,
        write: &str,
        read: &str,
    ) -> AdminResult<()> {
        TopicPermission::validate(write, read)
            .map_err(|message| AdminError::InvalidRegex { message })?;
        let _g = self.broker.ddl();
        self.vhost(vhost)?;
        self.require_user(user)?;
        let tp = TopicPermission::new(exchange, write, read, user, vhost)
            .map_err(|message| AdminError::InvalidRegex { message })?;
        if self
            .record(Change::SetTopicPermissions(TopicPermissionDef {
                vhost: vhost.to_string(),
                user: user.to_string(),
                exchange: exchange.to_string(),
                write: write.to_string(),
                read: read.to_string(),
            }))?
            .is_replicated()
        {
            return Ok(());
        }
        self.broker.auth.set_topic_permission(vhost, user, tp);
        Ok(())
    }

    pub fn clear_topic_permissions(
        &self,
        vhost: &str,
        user: &str,
        exchange: Option<&str>,
    ) -> AdminResult<()> {
        let _g = self.broker.ddl();
        self.require_user(user)?;
        self.vhost(vhost)?;
        if self
            .record(Change::ClearTopicPermissions {
                vhost: vhost.to_string(),
                user: user.to_string(),
                exchange: exchange.map(str::to_string),
            })?
            .is_replicated()
        {
            return Ok(());
        }
        self.broker
            .auth
            .clear_topic_permission(vhost, user, exchange);
        Ok(())
    }

    /// Every topic permission, or one vhost's, or one user's.
    pub fn topic_permissions(
        &self,
        vhost: Option<&str>,
        user: Option<&str>,
    ) -> AdminResult<Vec<TopicPermissionInfo>> {
        if let Some(v) = vhost {
            self.vhost(v)?;
        }
        if let Some(u) = user {
            self.require_user(u)?;
        }
        let mut out = Vec::new();
        for (v, u, list) in self.broker.auth.all_topic_permissions() {
            if vhost.is_some_and(|x| x != v) || user.is_some_and(|x| x != u) {
                continue;
            }
            for t in list.iter() {
                let [write, read] = t.patterns.clone();
                out.push(TopicPermissionInfo {
                    user: u.clone(),
                    vhost: v.clone(),
                    exchange: t.exchange.clone(),
                    write,
                    read,
                });
            }
        }
        Ok(out)
    }
}
