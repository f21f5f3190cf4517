// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {UpdateRegistry} from "../../src/UpdateRegistry.sol";
import {IUpdateRegistry} from "../../src/interfaces/IUpdateRegistry.sol";
import {Test} from "../utils/Test.sol";
import {RegistryHandler} from "./RegistryHandler.sol";

contract RegistryInvariants is Test {
    UpdateRegistry internal registry;
    RegistryHandler internal handler;

    function setUp() public {
        registry = new UpdateRegistry();
        handler = new RegistryHandler(registry);
        targetContract(address(handler));
    }

    /// @notice A release exists only if at least the threshold of distinct current signers signed it.
    /// forge-config: ci.invariant.runs = 96
    function invariant_releaseNeedsThresholdOfCurrentSigners() public view {
        uint256 n = handler.attemptedCount();
        for (uint256 i; i < n; ++i) {
            bytes32 id = handler.attempted(i);
            if (registry.release(id).publishedAt != 0) {
                assertTrue(handler.validWhenTried(id), "release published without a threshold of current signers");
            }
        }
    }

    /// @notice Versions per model strictly increase, and the model's latest is the last one published.
    /// forge-config: ci.invariant.runs = 96
    function invariant_versionsStrictlyIncrease() public view {
        for (uint256 k; k < 2; ++k) {
            uint32 modelId = handler.models(k);
            uint64[] memory v = handler.publishedVersions(modelId);
            for (uint256 i = 1; i < v.length; ++i) {
                assertTrue(v[i] > v[i - 1], "version did not increase");
            }
            uint64 latest = v.length == 0 ? 0 : v[v.length - 1];
            assertEq(registry.model(modelId).latestVersion, latest);
            assertTrue(latest == 0 || latest >= 1, "floor");
        }
    }

    /// @notice No state change is authorised without at least the threshold of distinct current signers, whatever
    /// the calldata (`RegistryHandler.raw` sends forged, mutated encodings of every threshold action): no raw
    /// call without such a threshold ever succeeded, and the signer set, nonce, payee, floors and revocations are
    /// exactly the ghost copies that only authorised calls update. (One invariant function: each is a separate
    /// campaign, and the ci profile's time is bounded.)
    /// forge-config: ci.invariant.runs = 256
    function invariant_noChangeWithoutThresholdOfCurrentSigners() public view {
        IUpdateRegistry.Manufacturer memory mf = registry.manufacturer(handler.mfId());
        assertEq(mf.nonce, handler.rotations() + handler.updates(), "nonce counts successful rotations and updates");
        assertEq(mf.signersHash, handler.ghostSignersHash());
        assertEq(handler.unauthorised(), 0, "a call without a threshold of current signers changed state");
        assertEq(mf.payee, handler.ghostPayee());
        for (uint256 k; k < 2; ++k) {
            uint32 modelId = handler.models(k);
            assertEq(registry.model(modelId).minVersion, handler.ghostFloor(modelId));
        }
        uint256 n = handler.publishedCount();
        for (uint256 i; i < n; ++i) {
            bytes32 id = handler.publishedIds(i);
            assertEq(registry.release(id).revokedAt != 0, handler.ghostRevoked(id));
        }
    }
}
