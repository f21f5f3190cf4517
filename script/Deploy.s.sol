// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {UpdateMarket} from "../contracts/src/UpdateMarket.sol";
import {UpdateRegistry} from "../contracts/src/UpdateRegistry.sol";

/// @dev The cheatcodes this script uses (forge-std is not a dependency).
interface ScriptVm {
    function startBroadcast() external;
    function stopBroadcast() external;
    function envOr(string calldata name, uint256 defaultValue) external view returns (uint256);
    function envOr(string calldata name, string calldata defaultValue) external view returns (string memory);
    function projectRoot() external view returns (string memory);
    function getCode(string calldata artifactPath) external view returns (bytes memory creationBytecode);
    function serializeUint(string calldata objectKey, string calldata valueKey, uint256 value)
        external
        returns (string memory);
    function serializeAddress(string calldata objectKey, string calldata valueKey, address value)
        external
        returns (string memory);
    function serializeBytes32(string calldata objectKey, string calldata valueKey, bytes32 value)
        external
        returns (string memory);
    function serializeString(string calldata objectKey, string calldata valueKey, string calldata value)
        external
        returns (string memory);
    function writeJson(string calldata json, string calldata path) external;
    function toString(uint256 value) external pure returns (string memory);
}

/// @title Deploy
/// @notice Deploys UpdateRegistry and UpdateMarket at deterministic CREATE2 addresses (through the standard
/// CREATE2 deployer at 0x4e59b44847b379578588920cA78FbF26c0B4956C) and records them for `script/deploy.sh`.
/// @dev Run through `script/deploy.sh --rpc-url $RPC <forge wallet options>`: forge writes files while it simulates,
/// before it broadcasts, so this script writes `deployments/<chain-id>.json.pending` and `deploy.sh` renames it to
/// `deployments/<chain-id>.json` only after the broadcast succeeded and both contracts have code.
/// `deploymentBlock` is the latest block when the script ran: at or before the deployment, where indexers start. Environment: `REFUND_WINDOW` (seconds, default 7 days), `GIT_COMMIT` (recorded, default "unknown").
/// A contract already at its address is kept, so the script can run again. The addresses equal
/// `otaledger_core::deploy::addresses(DEFAULT_SALT, window)` on the Rust side.
contract Deploy {
    ScriptVm private constant VM = ScriptVm(address(uint160(uint256(keccak256("hevm cheat code")))));

    /// @notice The CREATE2 salt of the canonical deployment.
    bytes32 public constant SALT = keccak256("otaledger.v1");
    /// @notice The deterministic deployment proxy forge deploys `new C{salt: s}()` through.
    address public constant CREATE2_DEPLOYER = 0x4e59b44847b379578588920cA78FbF26c0B4956C;
    /// @notice Default refund window of the market.
    uint256 public constant DEFAULT_REFUND_WINDOW = 7 days;

    /// @notice Deploys both contracts (if absent) and writes the deployment file.
    function run() external returns (UpdateRegistry registry, UpdateMarket market) {
        uint256 refundWindow = VM.envOr("REFUND_WINDOW", DEFAULT_REFUND_WINDOW);
        uint256 deploymentBlock = block.number;

        // Init code from the build's artifacts rather than `type(C).creationCode`: embedding both contracts'
        // code would put this script itself over the EIP-170 size limit that `forge build --sizes` checks.
        bytes memory registryCode = VM.getCode("UpdateRegistry.sol:UpdateRegistry");
        bytes memory marketCode = abi.encodePacked(
            VM.getCode("UpdateMarket.sol:UpdateMarket"), abi.encode(_create2Address(registryCode), refundWindow)
        );
        address registryAddress = _create2Address(registryCode);
        address marketAddress = _create2Address(marketCode);

        VM.startBroadcast();
        registry = UpdateRegistry(registryAddress.code.length > 0 ? registryAddress : _deploy(registryCode));
        market = UpdateMarket(marketAddress.code.length > 0 ? marketAddress : _deploy(marketCode));
        VM.stopBroadcast();
        require(address(registry) == registryAddress && address(market) == marketAddress, "Deploy: address mismatch");

        string memory key = "deployment";
        VM.serializeUint(key, "chainId", block.chainid);
        VM.serializeAddress(key, "registry", address(registry));
        VM.serializeAddress(key, "market", address(market));
        VM.serializeUint(key, "deploymentBlock", deploymentBlock);
        VM.serializeBytes32(key, "salt", SALT);
        string memory json = VM.serializeString(key, "commit", VM.envOr("GIT_COMMIT", string("unknown")));
        VM.writeJson(
            json, string.concat(VM.projectRoot(), "/deployments/", VM.toString(block.chainid), ".json.pending")
        );
    }

    /// @dev Deploys `initCode` with `SALT` through the CREATE2 deployer (which returns the 20-byte address).
    function _deploy(bytes memory initCode) private returns (address deployed) {
        (bool ok, bytes memory ret) = CREATE2_DEPLOYER.call(abi.encodePacked(SALT, initCode));
        require(ok && ret.length == 20, "Deploy: CREATE2 deployer failed");
        deployed = address(bytes20(ret));
    }

    function _create2Address(bytes memory initCode) private pure returns (address) {
        return address(
            uint160(uint256(keccak256(abi.encodePacked(bytes1(0xff), CREATE2_DEPLOYER, SALT, keccak256(initCode)))))
        );
    }
}
