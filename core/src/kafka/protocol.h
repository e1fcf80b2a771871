// Kafka protocol constants: API keys, error codes (Kafka's numeric values, from the protocol
// guide's "Error Codes" table) and the API versions the gateway advertises
// (../shared/KAFKA-PROTOCOL.md, "Versions to advertise": every range is non-flexible).
//
// Thread-safety: constants and pure functions only.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string_view>

namespace sluice::kafka {

enum class ApiKey : std::int16_t {
  kProduce = 0,
  kFetch = 1,
  kListOffsets = 2,
  kMetadata = 3,
  kOffsetCommit = 8,
  kOffsetFetch = 9,
  kFindCoordinator = 10,
  kJoinGroup = 11,
  kHeartbeat = 12,
  kLeaveGroup = 13,
  kSyncGroup = 14,
  kDescribeGroups = 15,
  kListGroups = 16,
  kApiVersions = 18,
  kCreateTopics = 19,
  kDeleteTopics = 20,
  kDeleteRecords = 21,
  kInitProducerId = 22,
  kDescribeConfigs = 32,
  kAlterConfigs = 33,
  kDescribeLogDirs = 35,
  kCreatePartitions = 37,
  kDeleteGroups = 42,
  kIncrementalAlterConfigs = 44,
  kOffsetDelete = 47,
};

constexpr std::int16_t to_int(ApiKey k) {
  return static_cast<std::int16_t>(k);
}

// "Produce", "Fetch", ...; "Unknown" for keys outside the enum.
std::string_view api_name(std::int16_t api_key);

enum class ErrorCode : std::int16_t {
  kUnknownServerError = -1,
  kNone = 0,
  kOffsetOutOfRange = 1,
  kCorruptMessage = 2,
  kUnknownTopicOrPartition = 3,
  kInvalidFetchSize = 4,
  kLeaderNotAvailable = 5,
  kNotLeaderOrFollower = 6,
  kNotLeaderForPartition = 6,  // the pre-2.6 name of NOT_LEADER_OR_FOLLOWER
  kRequestTimedOut = 7,
  kBrokerNotAvailable = 8,
  kReplicaNotAvailable = 9,
  kMessageTooLarge = 10,
  kStaleControllerEpoch = 11,
  kOffsetMetadataTooLarge = 12,
  kNetworkException = 13,
  kCoordinatorLoadInProgress = 14,
  kCoordinatorNotAvailable = 15,
  kNotCoordinator = 16,
  kInvalidTopicException = 17,
  kRecordListTooLarge = 18,
  kNotEnoughReplicas = 19,
  kNotEnoughReplicasAfterAppend = 20,
  kInvalidRequiredAcks = 21,
  kIllegalGeneration = 22,
  kInconsistentGroupProtocol = 23,
  kInvalidGroupId = 24,
  kUnknownMemberId = 25,
  kInvalidSessionTimeout = 26,
  kRebalanceInProgress = 27,
  kInvalidCommitOffsetSize = 28,
  kTopicAuthorizationFailed = 29,
  kGroupAuthorizationFailed = 30,
  kClusterAuthorizationFailed = 31,
  kInvalidTimestamp = 32,
  kUnsupportedSaslMechanism = 33,
  kIllegalSaslState = 34,
  kUnsupportedVersion = 35,
  kTopicAlreadyExists = 36,
  kInvalidPartitions = 37,
  kInvalidReplicationFactor = 38,
  kInvalidReplicaAssignment = 39,
  kInvalidConfig = 40,
  kNotController = 41,
  kInvalidRequest = 42,
  kUnsupportedForMessageFormat = 43,
  kPolicyViolation = 44,
  kOutOfOrderSequenceNumber = 45,
  kDuplicateSequenceNumber = 46,
  kInvalidProducerEpoch = 47,
  kInvalidTxnState = 48,
  kInvalidProducerIdMapping = 49,
  kInvalidTransactionTimeout = 50,
  kConcurrentTransactions = 51,
  kTransactionalIdAuthorizationFailed = 53,
  kOperationNotAttempted = 55,
  kKafkaStorageError = 56,
  kLogDirNotFound = 57,
  kSaslAuthenticationFailed = 58,
  kUnknownProducerId = 59,
  kReassignmentInProgress = 60,
  kNonEmptyGroup = 68,
  kGroupIdNotFound = 69,
  kFetchSessionIdNotFound = 70,
  kInvalidFetchSessionEpoch = 71,
  kListenerNotFound = 72,
  kTopicDeletionDisabled = 73,
  kFencedLeaderEpoch = 74,
  kUnknownLeaderEpoch = 75,
  kUnsupportedCompressionType = 76,
  kStaleBrokerEpoch = 77,
  kOffsetNotAvailable = 78,
  kMemberIdRequired = 79,
  kPreferredLeaderNotAvailable = 80,
  kGroupMaxSizeReached = 81,
  kFencedInstanceId = 82,
  kGroupSubscribedToTopic = 86,
  kInvalidRecord = 87,
  kUnstableOffsetCommit = 88,
  kThrottlingQuotaExceeded = 89,
};

constexpr std::int16_t to_int(ErrorCode e) {
  return static_cast<std::int16_t>(e);
}

// Kafka's name for an error code ("UNKNOWN_TOPIC_OR_PARTITION"); "UNKNOWN_ERROR_CODE" for codes
// not in the enum.
std::string_view error_name(ErrorCode e);

// One advertised version range.
struct ApiVersionRange {
  ApiKey api_key;
  std::int16_t min_version;
  std::int16_t max_version;
};

// What ApiVersions advertises, and what the gateway decodes, ordered by key: KAFKA-PROTOCOL.md's
// "advertise" column, plus the non-flexible versions of admin APIs that Kafka's tools and admin
// clients use (DescribeGroups, ListGroups, DeleteGroups, OffsetDelete; CreatePartitions,
// AlterConfigs, IncrementalAlterConfigs; DeleteRecords, DescribeLogDirs).
// One API a line (clang-format would pack these in columns).
// clang-format off
inline constexpr std::array<ApiVersionRange, 25> kSupportedApis{{
    {ApiKey::kProduce, 3, 8},
    {ApiKey::kFetch, 4, 11},
    {ApiKey::kListOffsets, 0, 5},
    {ApiKey::kMetadata, 0, 8},
    {ApiKey::kOffsetCommit, 0, 7},
    {ApiKey::kOffsetFetch, 0, 5},
    {ApiKey::kFindCoordinator, 0, 2},
    {ApiKey::kJoinGroup, 0, 5},
    {ApiKey::kHeartbeat, 0, 3},
    {ApiKey::kLeaveGroup, 0, 1},
    {ApiKey::kSyncGroup, 0, 3},
    {ApiKey::kDescribeGroups, 0, 4},
    {ApiKey::kListGroups, 0, 2},
    {ApiKey::kApiVersions, 0, 2},
    {ApiKey::kCreateTopics, 0, 4},
    {ApiKey::kDeleteTopics, 0, 3},
    {ApiKey::kDeleteRecords, 0, 1},
    {ApiKey::kInitProducerId, 0, 1},
    {ApiKey::kDescribeConfigs, 0, 3},
    {ApiKey::kAlterConfigs, 0, 1},
    {ApiKey::kDescribeLogDirs, 0, 1},
    {ApiKey::kCreatePartitions, 0, 1},
    {ApiKey::kDeleteGroups, 0, 1},
    {ApiKey::kIncrementalAlterConfigs, 0, 0},
    {ApiKey::kOffsetDelete, 0, 0},
}};
// clang-format on

// The advertised range of an API key; nullopt for keys the gateway does not serve.
constexpr std::optional<ApiVersionRange> supported_range(std::int16_t api_key) {
  for (const ApiVersionRange& r : kSupportedApis) {
    if (to_int(r.api_key) == api_key) return r;
  }
  return std::nullopt;
}

// True when (api_key, version) is advertised. ApiVersions v3+ is *not* supported in this
// sense, though its request is decoded so it can be answered with the v0-format error reply.
constexpr bool is_supported(std::int16_t api_key, std::int16_t version) {
  std::optional<ApiVersionRange> r = supported_range(api_key);
  return r && version >= r->min_version && version <= r->max_version;
}

// ApiVersions requests from this version on use request header v2 (tagged fields after the
// client id) and a flexible body.
inline constexpr std::int16_t kFirstFlexibleApiVersions = 3;

}  // namespace sluice::kafka
